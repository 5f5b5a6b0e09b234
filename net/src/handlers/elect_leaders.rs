//! ElectLeaders (key 43): preferred-leader election (each partition led
//! again by the first of its replicas, if that one is in sync and alive)
//! and unclean election (a leaderless partition gets any live replica).
//! The controller elects; the answer per partition compares its leader
//! before and after.

use bytes::Bytes;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ApiKey, ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use replication::metadata::{ClusterMetadata, TopicId};
use replication::quorum::wire::RemoteError;
use replication::quorum::{ControllerRequest, NO_LEADER};

use replication::metadata::acl;

use super::errors::{
    CLUSTER_AUTHORIZATION_FAILED, ELECTION_NOT_NEEDED, ELIGIBLE_LEADERS_NOT_AVAILABLE,
    INVALID_REQUEST, NONE, PREFERRED_LEADER_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION,
};
use super::{Handler, decode_body};
use crate::broker::PartitionView;
use crate::broker::Shard;
use crate::frame::{FrameError, Request, encode_response};

pub const HANDLER: Handler = Handler {
    api_key: ApiKey::ElectLeaders,
    min_version: 0,
    max_version: 2,
};

/// Kafka's ElectionType: 0 preferred, 1 unclean.
const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;

/// One asked partition: its topic id when it exists.
struct Asked {
    topic: TopicName,
    partition: i32,
    topic_id: Option<TopicId>,
}

/// The asked partitions; null asks for every partition of every topic.
fn asked(body: &ElectLeadersRequest, metadata: &ClusterMetadata) -> Vec<Asked> {
    let exists = |name: &str, partition: i32| {
        metadata
            .topic(name)
            .filter(|t| (0..t.partitions).contains(&partition))
            .map(|t| t.topic_id)
    };
    match &body.topic_partitions {
        Some(topics) => topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|&partition| Asked {
                    topic: t.topic.clone(),
                    partition,
                    topic_id: exists(&t.topic.0, partition),
                })
            })
            .collect(),
        None => metadata
            .topics()
            .flat_map(|t| {
                (0..t.partitions).map(|partition| Asked {
                    topic: TopicName(StrBytes::from_string(t.name.clone())),
                    partition,
                    topic_id: Some(t.topic_id),
                })
            })
            .collect(),
    }
}

/// Whether `election` would change the partition's leader: preferred,
/// when its first replica does not lead; unclean, when nobody leads.
fn needs_election(election: i8, view: &PartitionView) -> bool {
    match election {
        PREFERRED => view.replicas.first() != Some(&view.leader),
        _ => view.leader == NO_LEADER,
    }
}

/// The answer for a partition the controller was asked to elect a leader
/// for, seen `after` the request (`failure`: the controller's refusal).
fn outcome(
    election: i8,
    after: &PartitionView,
    failure: Option<&RemoteError>,
) -> (i16, Option<String>) {
    match failure {
        _ if !needs_election(election, after) => (NONE, None),
        Some(e) => (e.code, Some(e.message.clone())),
        None if election == PREFERRED => (
            PREFERRED_LEADER_NOT_AVAILABLE,
            Some(format!(
                "the preferred replica {:?} is not in sync or not alive (leader {})",
                after.replicas.first(),
                after.leader
            )),
        ),
        None => (
            ELIGIBLE_LEADERS_NOT_AVAILABLE,
            Some("no replica of the partition is alive".to_string()),
        ),
    }
}

pub async fn handle(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let version = request.version();
    let body: ElectLeadersRequest = decode_body(request)?;
    let election = if version == 0 {
        PREFERRED
    } else {
        body.election_type
    };
    let respond = |error_code: i16, results: Vec<ReplicaElectionResult>| {
        let response = ElectLeadersResponse::default()
            .with_error_code(error_code)
            .with_replica_election_results(results);
        encode_response(
            ApiKey::ElectLeaders,
            version,
            request.correlation_id(),
            &response,
        )
    };
    if election != PREFERRED && election != UNCLEAN {
        return respond(INVALID_REQUEST, Vec::new());
    }
    let before = shard.metadata();
    let asked = asked(&body, &before);
    if !shard.allowed_cluster(request, acl::operation::ALTER) {
        // Every partition asked, and the whole request (v1+), refused.
        let mut results: Vec<ReplicaElectionResult> = Vec::new();
        for a in &asked {
            let result = PartitionResult::default()
                .with_partition_id(a.partition)
                .with_error_code(CLUSTER_AUTHORIZATION_FAILED);
            match results.last_mut() {
                Some(last) if last.topic == a.topic => last.partition_result.push(result),
                _ => results.push(
                    ReplicaElectionResult::default()
                        .with_topic(a.topic.clone())
                        .with_partition_result(vec![result]),
                ),
            }
        }
        let top = if version >= 1 {
            CLUSTER_AUTHORIZATION_FAILED
        } else {
            NONE
        };
        return respond(top, results);
    }
    // Only partitions whose leader is to change go to the controller.
    let wanted: Vec<(TopicId, i32)> = asked
        .iter()
        .filter_map(|a| {
            let topic_id = a.topic_id?;
            let view = shard.partition_view(&before, topic_id, a.partition);
            needs_election(election, &view).then_some((topic_id, a.partition))
        })
        .collect();
    let mut failure = None;
    if !wanted.is_empty() && shard.in_cluster() {
        let request = ControllerRequest::ElectLeaders {
            unclean: election == UNCLEAN,
            partitions: wanted.clone(),
        };
        failure = shard.ask_controller(request).await.err();
    }
    let after = shard.metadata();
    let mut results: Vec<ReplicaElectionResult> = Vec::new();
    for a in &asked {
        let (code, message) = match a.topic_id {
            None => (UNKNOWN_TOPIC_OR_PARTITION, None),
            Some(id) if wanted.contains(&(id, a.partition)) => {
                let view = shard.partition_view(&after, id, a.partition);
                outcome(election, &view, failure.as_ref())
            }
            Some(_) => (ELECTION_NOT_NEEDED, None),
        };
        let result = PartitionResult::default()
            .with_partition_id(a.partition)
            .with_error_code(code)
            .with_error_message(message.map(StrBytes::from_string));
        match results.last_mut() {
            Some(last) if last.topic == a.topic => last.partition_result.push(result),
            _ => results.push(
                ReplicaElectionResult::default()
                    .with_topic(a.topic.clone())
                    .with_partition_result(vec![result]),
            ),
        }
    }
    respond(NONE, results)
}
