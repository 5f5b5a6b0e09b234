//! DescribeLogDirs (key 35): the one data directory and the size of every
//! partition replica in it, led here or followed (asked of each
//! partition's owning shard).

use bytes::Bytes;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{
    ApiKey, DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use replication::metadata::acl;

use super::errors::{CLUSTER_AUTHORIZATION_FAILED, NONE};
use super::{Handler, decode_body};
use crate::broker::Shard;
use crate::frame::{FrameError, Request, encode_response};

pub const HANDLER: Handler = Handler {
    api_key: ApiKey::DescribeLogDirs,
    min_version: 1,
    max_version: 4,
};

/// Kafka's "unknown" for the volume sizes (v4).
const UNKNOWN_VOLUME_BYTES: i64 = -1;

pub async fn handle(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let version = request.version();
    let body: DescribeLogDirsRequest = decode_body(request)?;
    if !shard.allowed_cluster(request, acl::operation::DESCRIBE) {
        // v3+ say why; before, no log dirs (as Kafka).
        let code = if version >= 3 {
            CLUSTER_AUTHORIZATION_FAILED
        } else {
            NONE
        };
        let response = DescribeLogDirsResponse::default().with_error_code(code);
        return encode_response(
            ApiKey::DescribeLogDirs,
            version,
            request.correlation_id(),
            &response,
        );
    }
    let metadata = shard.metadata();
    // Null: every partition of every topic.
    let wanted: Vec<(String, Vec<i32>)> = match body.topics {
        Some(topics) => topics
            .into_iter()
            .map(|t| (t.topic.0.to_string(), t.partitions))
            .collect(),
        None => metadata
            .topics()
            .map(|t| (t.name.clone(), (0..t.partitions).collect()))
            .collect(),
    };
    let mut topics = Vec::with_capacity(wanted.len());
    for (name, partitions) in wanted {
        // Partitions this broker has no replica of are left out, as Kafka
        // does.
        let partitions: Vec<_> = shard
            .replica_sizes(&name, partitions)
            .await
            .into_iter()
            .filter_map(|(index, size)| {
                Some(
                    DescribeLogDirsPartition::default()
                        .with_partition_index(index)
                        .with_partition_size(i64::try_from(size?).unwrap_or(i64::MAX))
                        .with_offset_lag(0),
                )
            })
            .collect();
        if !partitions.is_empty() {
            let name = TopicName(StrBytes::from_string(name));
            topics.push(
                DescribeLogDirsTopic::default()
                    .with_name(name)
                    .with_partitions(partitions),
            );
        }
    }
    let result = DescribeLogDirsResult::default()
        .with_error_code(NONE)
        .with_log_dir(StrBytes::from_string(shard.node.log_dir.clone()))
        .with_topics(topics)
        .with_total_bytes(UNKNOWN_VOLUME_BYTES)
        .with_usable_bytes(UNKNOWN_VOLUME_BYTES);
    let response = DescribeLogDirsResponse::default()
        .with_error_code(NONE)
        .with_results(vec![result]);
    encode_response(
        ApiKey::DescribeLogDirs,
        version,
        request.correlation_id(),
        &response,
    )
}
