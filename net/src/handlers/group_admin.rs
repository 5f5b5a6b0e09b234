//! ListGroups (key 16), DescribeGroups (15), DeleteGroups (42) and
//! OffsetDelete (47): the groups' admin side, as kafka-consumer-groups and
//! admin clients use it.

use bytes::Bytes;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, GroupId, ListGroupsRequest, ListGroupsResponse, OffsetDeleteRequest,
    OffsetDeleteResponse,
};
use kafka_protocol::protocol::StrBytes;

use replication::metadata::acl;

use super::errors::{
    GROUP_AUTHORIZATION_FAILED, INVALID_GROUP_ID, NONE, TOPIC_AUTHORIZATION_FAILED,
    UNKNOWN_SERVER_ERROR,
};
use super::group_membership::unexpected;
use super::{Handler, decode_body};
use crate::broker::Shard;
use crate::broker::groups::{GroupAnswer, GroupOp};
use crate::frame::{FrameError, Request, encode_response};
use crate::group::OffsetKey;

pub const LIST: Handler = Handler {
    api_key: ApiKey::ListGroups,
    min_version: 0,
    max_version: 5,
};
pub const DESCRIBE: Handler = Handler {
    api_key: ApiKey::DescribeGroups,
    min_version: 0,
    max_version: 5,
};
pub const DELETE: Handler = Handler {
    api_key: ApiKey::DeleteGroups,
    min_version: 0,
    max_version: 2,
};
pub const DELETE_OFFSETS: Handler = Handler {
    api_key: ApiKey::OffsetDelete,
    min_version: 0,
    max_version: 0,
};

/// DescribeGroups' value when authorized operations were not asked for.
pub(super) const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

pub async fn list(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let version = request.version();
    let body: ListGroupsRequest = decode_body(request)?;
    let states: Vec<String> = body
        .states_filter
        .iter()
        .map(|s| s.to_lowercase())
        .collect();
    let types: Vec<String> = body.types_filter.iter().map(|t| t.to_lowercase()).collect();
    // ACLs: Describe on the cluster lists every group; else only the
    // groups the principal may describe.
    let every = shard.allowed_cluster(request, acl::operation::DESCRIBE);
    let groups = shard
        .list_groups()
        .await
        .into_iter()
        .filter(|g| {
            (types.is_empty() || types.iter().any(|t| t == g.group_type))
                && (states.is_empty() || states.contains(&g.state.to_lowercase()))
                && (every || shard.allowed_group(request, acl::operation::DESCRIBE, &g.group_id))
        })
        .map(|g| {
            ListedGroup::default()
                .with_group_id(GroupId(text(g.group_id)))
                .with_protocol_type(text(g.protocol_type))
                .with_group_state(text(g.state))
                .with_group_type(text(g.group_type))
        })
        .collect();
    let response = ListGroupsResponse::default()
        .with_error_code(NONE)
        .with_groups(groups);
    encode_response(
        ApiKey::ListGroups,
        version,
        request.correlation_id(),
        &response,
    )
}

pub async fn describe(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let version = request.version();
    let body: DescribeGroupsRequest = decode_body(request)?;
    let mut groups = Vec::with_capacity(body.groups.len());
    for group_id in body.groups {
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
        let view = match shard.group_call(&group_id, GroupOp::Describe).await {
            GroupAnswer::Described(view) => view,
            GroupAnswer::Codes(codes) => {
                let code = codes.first().copied().unwrap_or(UNKNOWN_SERVER_ERROR);
                groups.push(entry.with_error_code(code));
                continue;
            }
            other => return unexpected(request, &other),
        };
        // Kafka describes an unknown group as Dead, without an error.
        let Some(view) = view else {
            groups.push(entry.with_error_code(NONE).with_group_state(text("Dead")));
            continue;
        };
        let members = view
            .members
            .into_iter()
            .map(|m| {
                DescribedGroupMember::default()
                    .with_member_id(text(m.member_id))
                    .with_group_instance_id(m.instance_id.map(text))
                    .with_client_id(text(m.client_id))
                    .with_client_host(text(m.client_host))
                    .with_member_metadata(m.metadata)
                    .with_member_assignment(m.assignment)
            })
            .collect();
        groups.push(
            entry
                .with_error_code(NONE)
                .with_group_state(text(view.state.name()))
                .with_protocol_type(text(view.protocol_type))
                .with_protocol_data(text(view.protocol))
                .with_members(members),
        );
    }
    let response = DescribeGroupsResponse::default().with_groups(groups);
    encode_response(
        ApiKey::DescribeGroups,
        version,
        request.correlation_id(),
        &response,
    )
}

pub async fn delete(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let version = request.version();
    let body: DeleteGroupsRequest = decode_body(request)?;
    let mut results = Vec::with_capacity(body.groups_names.len());
    for group_id in body.groups_names {
        let code = if group_id.is_empty() {
            INVALID_GROUP_ID
        } else if !shard.allowed_group(request, acl::operation::DELETE, &group_id) {
            GROUP_AUTHORIZATION_FAILED
        } else {
            match shard.group_call(&group_id, GroupOp::Delete).await {
                GroupAnswer::Codes(codes) => codes.first().copied().unwrap_or(UNKNOWN_SERVER_ERROR),
                other => return unexpected(request, &other),
            }
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(group_id)
                .with_error_code(code),
        );
    }
    let response = DeleteGroupsResponse::default().with_results(results);
    encode_response(
        ApiKey::DeleteGroups,
        version,
        request.correlation_id(),
        &response,
    )
}

pub async fn delete_offsets(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let version = request.version();
    let body: OffsetDeleteRequest = decode_body(request)?;
    // ACLs: Delete on the group; Read on each topic (a topic refused is
    // answered TOPIC_AUTHORIZATION_FAILED and its offsets stay).
    let readable: Vec<bool> = body
        .topics
        .iter()
        .map(|t| shard.allowed_topic(request, acl::operation::READ, &t.name.0))
        .collect();
    let keys: Vec<OffsetKey> = body
        .topics
        .iter()
        .zip(&readable)
        .filter(|(_, readable)| **readable)
        .flat_map(|(t, _)| {
            t.partitions.iter().map(|p| OffsetKey {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
            })
        })
        .collect();
    let response = if body.group_id.is_empty() {
        OffsetDeleteResponse::default().with_error_code(INVALID_GROUP_ID)
    } else if !shard.allowed_group(request, acl::operation::DELETE, &body.group_id) {
        OffsetDeleteResponse::default().with_error_code(GROUP_AUTHORIZATION_FAILED)
    } else {
        let codes = match shard
            .group_call(&body.group_id, GroupOp::DeleteOffsets(keys.clone()))
            .await
        {
            GroupAnswer::Codes(codes) => codes,
            other => return unexpected(request, &other),
        };
        // A group-level failure comes back as the same code everywhere.
        let group_error = codes
            .first()
            .copied()
            .filter(|c| *c != NONE && codes.iter().all(|x| x == c) && is_group_level(*c));
        match group_error {
            Some(code) => OffsetDeleteResponse::default().with_error_code(code),
            None => {
                let mut codes = codes.into_iter();
                let topics = body
                    .topics
                    .into_iter()
                    .zip(readable)
                    .map(|(t, readable)| {
                        let partitions = t
                            .partitions
                            .iter()
                            .map(|p| {
                                let code = if readable {
                                    codes.next().unwrap_or(UNKNOWN_SERVER_ERROR)
                                } else {
                                    TOPIC_AUTHORIZATION_FAILED
                                };
                                OffsetDeleteResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(code)
                            })
                            .collect();
                        OffsetDeleteResponseTopic::default()
                            .with_name(t.name)
                            .with_partitions(partitions)
                    })
                    .collect();
                OffsetDeleteResponse::default()
                    .with_error_code(NONE)
                    .with_topics(topics)
            }
        }
    };
    encode_response(
        ApiKey::OffsetDelete,
        version,
        request.correlation_id(),
        &response,
    )
}

/// Codes that describe the group rather than a partition.
fn is_group_level(code: i16) -> bool {
    use super::errors::{COORDINATOR_NOT_AVAILABLE, GROUP_ID_NOT_FOUND};
    matches!(code, GROUP_ID_NOT_FOUND | COORDINATOR_NOT_AVAILABLE)
}
