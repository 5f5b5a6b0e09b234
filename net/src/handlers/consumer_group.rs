//! ConsumerGroupHeartbeat (key 68) and ConsumerGroupDescribe (key 69):
//! KIP-848's consumer group protocol (`group.protocol=consumer`), run on
//! the group's coordinator shard like the classic group requests
//! ([`crate::group::consumer`] has the state machine).

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions as DescribedPartitions,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{
    Assignment as HeartbeatAssignment, TopicPartitions,
};
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse,
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use replication::metadata::acl;

use super::errors::{
    GROUP_AUTHORIZATION_FAILED, INVALID_GROUP_ID, NONE, TOPIC_AUTHORIZATION_FAILED,
    UNKNOWN_SERVER_ERROR,
};
use super::group_admin::OPERATIONS_NOT_REQUESTED;
use super::group_membership::unexpected;
use super::{Handler, decode_body};
use crate::broker::Shard;
use crate::broker::groups::{GroupAnswer, GroupOp};
use crate::frame::{FrameError, Request, encode_response};
use crate::group::consumer::{self, ConsumerGroup, Heartbeat, TopicUuid};

pub const HEARTBEAT: Handler = Handler {
    api_key: ApiKey::ConsumerGroupHeartbeat,
    min_version: 0,
    max_version: 1,
};
pub const DESCRIBE: Handler = Handler {
    api_key: ApiKey::ConsumerGroupDescribe,
    min_version: 0,
    max_version: 1,
};

/// ConsumerGroupDescribe v1's member type of a KIP-848 member.
const CONSUMER_MEMBER: i8 = 1;

fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

pub async fn heartbeat(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let version = request.version();
    let body: ConsumerGroupHeartbeatRequest = decode_body(request)?;
    let group_id = body.group_id.0.to_string();
    let owned = body.topic_partitions.map(|topics| {
        let mut owned = consumer::Assignment::new();
        for t in topics {
            owned
                .entry(*t.topic_id.as_bytes())
                .or_default()
                .extend(t.partitions);
        }
        owned
    });
    let heartbeat = Heartbeat {
        version,
        member_id: body.member_id.to_string(),
        member_epoch: body.member_epoch,
        instance_id: body.instance_id.map(|i| i.to_string()),
        rack_id: body.rack_id.map(|r| r.to_string()),
        rebalance_timeout_ms: body.rebalance_timeout_ms,
        subscribed_topic_names: body
            .subscribed_topic_names
            .map(|names| names.into_iter().map(|n| n.0.to_string()).collect()),
        subscribed_topic_regex: body.subscribed_topic_regex.map(|r| r.to_string()),
        server_assignor: body.server_assignor.map(|a| a.to_string()),
        owned,
        client_id: request
            .header
            .client_id
            .as_deref()
            .unwrap_or_default()
            .to_string(),
        client_host: request.client_host.clone(),
    };
    // ACLs: Read on the group, Describe on every subscribed topic (as
    // Kafka's KafkaApis: a subscription may not probe for topics).
    let undescribable = heartbeat
        .subscribed_topic_names
        .iter()
        .flatten()
        .any(|topic| !shard.allowed_topic(request, acl::operation::DESCRIBE, topic));
    let reply = if !shard.allowed_group(request, acl::operation::READ, &group_id) {
        consumer::HeartbeatReply::error(
            GROUP_AUTHORIZATION_FAILED,
            "the principal may not read the group",
        )
    } else if undescribable {
        consumer::HeartbeatReply::error(
            TOPIC_AUTHORIZATION_FAILED,
            "the principal may not describe every subscribed topic",
        )
    } else {
        match shard
            .group_call(&group_id, GroupOp::ConsumerHeartbeat(heartbeat))
            .await
        {
            GroupAnswer::ConsumerHeartbeat(reply) => reply,
            GroupAnswer::Codes(codes) => consumer::HeartbeatReply::error(
                codes.first().copied().unwrap_or(UNKNOWN_SERVER_ERROR),
                "",
            ),
            other => return unexpected(request, &other),
        }
    };
    let response = ConsumerGroupHeartbeatResponse::default()
        .with_error_code(reply.error)
        .with_error_message(reply.message.filter(|m| !m.is_empty()).map(text))
        .with_member_id((reply.error == NONE).then(|| text(reply.member_id)))
        .with_member_epoch(reply.member_epoch)
        .with_heartbeat_interval_ms(reply.heartbeat_interval_ms)
        .with_assignment(reply.assignment.map(|assignment| {
            HeartbeatAssignment::default().with_topic_partitions(
                assignment
                    .into_iter()
                    .map(|(topic, partitions)| {
                        TopicPartitions::default()
                            .with_topic_id(uuid::Uuid::from_bytes(topic))
                            .with_partitions(partitions.into_iter().collect())
                    })
                    .collect(),
            )
        }));
    encode_response(
        ApiKey::ConsumerGroupHeartbeat,
        version,
        request.correlation_id(),
        &response,
    )
}

pub async fn describe(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let version = request.version();
    let body: ConsumerGroupDescribeRequest = decode_body(request)?;
    let names: BTreeMap<TopicUuid, String> = shard
        .metadata()
        .topics()
        .map(|t| (t.topic_id.0, t.name.clone()))
        .collect();
    let mut groups = Vec::with_capacity(body.group_ids.len());
    for group_id in body.group_ids {
        let entry = DescribedGroup::default()
            .with_group_id(group_id.clone())
            .with_authorized_operations(OPERATIONS_NOT_REQUESTED);
        if group_id.is_empty() {
            groups.push(entry.with_error_code(INVALID_GROUP_ID));
            continue;
        }
        if !shard.allowed_group(request, acl::operation::DESCRIBE, &group_id) {
            groups.push(entry.with_error_code(GROUP_AUTHORIZATION_FAILED));
            continue;
        }
        let found = match shard.group_call(&group_id, GroupOp::ConsumerDescribe).await {
            GroupAnswer::ConsumerDescribed(found) => *found,
            GroupAnswer::Codes(codes) => {
                Err(codes.first().copied().unwrap_or(UNKNOWN_SERVER_ERROR))
            }
            other => return unexpected(request, &other),
        };
        groups.push(match found {
            Ok(group) => described(entry, &group, &names),
            Err(code) => entry
                .with_error_code(code)
                .with_error_message(Some(text(format!(
                    "Group {} is not a consumer group.",
                    &*group_id
                )))),
        });
    }
    let response = ConsumerGroupDescribeResponse::default().with_groups(groups);
    encode_response(
        ApiKey::ConsumerGroupDescribe,
        version,
        request.correlation_id(),
        &response,
    )
}

fn described(
    entry: DescribedGroup,
    group: &ConsumerGroup,
    names: &BTreeMap<TopicUuid, String>,
) -> DescribedGroup {
    let assignment = |a: &consumer::Assignment| {
        Assignment::default().with_topic_partitions(
            a.iter()
                .map(|(topic, partitions)| {
                    let name = names.get(topic).cloned().unwrap_or_default();
                    DescribedPartitions::default()
                        .with_topic_id(uuid::Uuid::from_bytes(*topic))
                        .with_topic_name(TopicName(text(name)))
                        .with_partitions(partitions.iter().copied().collect())
                })
                .collect(),
        )
    };
    let empty = consumer::Assignment::new();
    let members = group
        .members
        .values()
        .map(|m| {
            Member::default()
                .with_member_id(text(m.id.clone()))
                .with_instance_id(m.instance_id.clone().map(text))
                .with_rack_id(m.rack_id.clone().map(text))
                .with_member_epoch(m.epoch)
                .with_client_id(text(m.client_id.clone()))
                .with_client_host(text(m.client_host.clone()))
                .with_subscribed_topic_names(
                    m.subscribed
                        .iter()
                        .map(|n| TopicName(text(n.clone())))
                        .collect(),
                )
                .with_subscribed_topic_regex(m.regex.clone().map(text))
                .with_assignment(assignment(&m.assigned))
                .with_target_assignment(assignment(group.target.get(&m.id).unwrap_or(&empty)))
                .with_member_type(CONSUMER_MEMBER)
        })
        .collect();
    entry
        .with_error_code(NONE)
        .with_group_state(text(consumer::state_name(group)))
        .with_group_epoch(group.epoch)
        .with_assignment_epoch(group.assignment_epoch)
        .with_assignor_name(text(if group.assignor.is_empty() {
            consumer::DEFAULT_ASSIGNOR
        } else {
            group.assignor.as_str()
        }))
        .with_members(members)
}
