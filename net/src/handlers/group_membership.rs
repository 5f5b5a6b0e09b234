//! JoinGroup (key 11), SyncGroup (14), Heartbeat (12) and LeaveGroup (13):
//! the classic group protocol. Each request runs on the group's
//! coordinator shard ([`crate::broker::groups`]); joins and syncs may be
//! held there until the phase they wait for completes.

use bytes::Bytes;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    ApiKey, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;

use replication::metadata::acl;

use super::errors::{GROUP_AUTHORIZATION_FAILED, NONE, UNKNOWN_SERVER_ERROR};
use super::{Handler, decode_body};
use crate::broker::Shard;
use crate::broker::groups::{GroupAnswer, GroupOp};
use crate::frame::{FrameError, Request, encode_response};
use crate::group::{Join, JoinReply, Sync, SyncReply};

pub const JOIN: Handler = Handler {
    api_key: ApiKey::JoinGroup,
    min_version: 0,
    max_version: 9,
};
pub const SYNC: Handler = Handler {
    api_key: ApiKey::SyncGroup,
    min_version: 0,
    max_version: 5,
};
pub const HEARTBEAT: Handler = Handler {
    api_key: ApiKey::Heartbeat,
    min_version: 0,
    max_version: 4,
};
pub const LEAVE: Handler = Handler {
    api_key: ApiKey::LeaveGroup,
    min_version: 0,
    max_version: 5,
};

/// The first JoinGroup version whose members must rejoin with the id the
/// broker gave them (KIP-394).
const KNOWN_MEMBER_ID_VERSION: i16 = 4;
/// The first version where protocol names may be null (JoinGroup v7).
const NULLABLE_PROTOCOL_VERSION: i16 = 7;
/// The first LeaveGroup version that batches members.
const BATCHED_LEAVE_VERSION: i16 = 3;

fn text(s: String) -> StrBytes {
    StrBytes::from_string(s)
}

pub async fn join(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let version = request.version();
    let body: JoinGroupRequest = decode_body(request)?;
    let group_id = body.group_id.0.to_string();
    // ACLs: Read on the group, for every group API of a member.
    let permitted = shard.allowed_group(request, acl::operation::READ, &group_id);
    let asked_member = body.member_id.to_string();
    let join = Join {
        group_id: group_id.clone(),
        member_id: body.member_id.to_string(),
        instance_id: body.group_instance_id.map(|i| i.to_string()),
        client_id: request
            .header
            .client_id
            .as_deref()
            .unwrap_or_default()
            .to_string(),
        client_host: request.client_host.clone(),
        session_timeout_ms: body.session_timeout_ms,
        // v0 has no rebalance timeout: the session timeout serves.
        rebalance_timeout_ms: if version == 0 {
            body.session_timeout_ms
        } else {
            body.rebalance_timeout_ms
        },
        protocol_type: body.protocol_type.to_string(),
        protocols: body
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= KNOWN_MEMBER_ID_VERSION,
    };
    let reply = if permitted {
        match shard.group_call(&group_id, GroupOp::Join(join)).await {
            GroupAnswer::Join(reply) => reply,
            other => return unexpected(request, &other),
        }
    } else {
        JoinReply::error(GROUP_AUTHORIZATION_FAILED, &asked_member)
    };
    let old_names = version < NULLABLE_PROTOCOL_VERSION;
    let response = JoinGroupResponse::default()
        .with_error_code(reply.error)
        .with_generation_id(reply.generation)
        .with_protocol_type(reply.protocol_type.map(text))
        .with_protocol_name(match reply.protocol_name {
            None if old_names => Some(StrBytes::default()),
            name => name.map(text),
        })
        .with_leader(text(reply.leader))
        .with_skip_assignment(false)
        .with_member_id(text(reply.member_id))
        .with_members(
            reply
                .members
                .into_iter()
                .map(|(id, instance, metadata)| {
                    JoinGroupResponseMember::default()
                        .with_member_id(text(id))
                        .with_group_instance_id(instance.map(text))
                        .with_metadata(metadata)
                })
                .collect(),
        );
    encode_response(
        ApiKey::JoinGroup,
        version,
        request.correlation_id(),
        &response,
    )
}

pub async fn sync(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let version = request.version();
    let body: SyncGroupRequest = decode_body(request)?;
    let group_id = body.group_id.0.to_string();
    let sync = Sync {
        group_id: group_id.clone(),
        member_id: body.member_id.to_string(),
        instance_id: body.group_instance_id.map(|i| i.to_string()),
        generation: body.generation_id,
        assignments: body
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    let reply = if !shard.allowed_group(request, acl::operation::READ, &group_id) {
        SyncReply::error(GROUP_AUTHORIZATION_FAILED)
    } else {
        match shard.group_call(&group_id, GroupOp::Sync(sync)).await {
            GroupAnswer::Sync(reply) => reply,
            other => return unexpected(request, &other),
        }
    };
    let response = SyncGroupResponse::default()
        .with_error_code(reply.error)
        .with_protocol_type(reply.protocol_type.map(text))
        .with_protocol_name(reply.protocol_name.map(text))
        .with_assignment(reply.assignment);
    encode_response(
        ApiKey::SyncGroup,
        version,
        request.correlation_id(),
        &response,
    )
}

pub async fn heartbeat(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let version = request.version();
    let body: HeartbeatRequest = decode_body(request)?;
    let op = GroupOp::Heartbeat {
        member_id: body.member_id.to_string(),
        instance_id: body.group_instance_id.map(|i| i.to_string()),
        generation: body.generation_id,
    };
    let code = if !shard.allowed_group(request, acl::operation::READ, &body.group_id.0) {
        GROUP_AUTHORIZATION_FAILED
    } else {
        match shard.group_call(&body.group_id.0, op).await {
            GroupAnswer::Codes(codes) => codes.first().copied().unwrap_or(UNKNOWN_SERVER_ERROR),
            other => return unexpected(request, &other),
        }
    };
    let response = HeartbeatResponse::default().with_error_code(code);
    encode_response(
        ApiKey::Heartbeat,
        version,
        request.correlation_id(),
        &response,
    )
}

pub async fn leave(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let version = request.version();
    let body: LeaveGroupRequest = decode_body(request)?;
    let leaving: Vec<(String, Option<String>)> = if version >= BATCHED_LEAVE_VERSION {
        body.members
            .into_iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.map(|i| i.to_string()),
                )
            })
            .collect()
    } else {
        vec![(body.member_id.to_string(), None)]
    };
    if !shard.allowed_group(request, acl::operation::READ, &body.group_id.0) {
        let response = LeaveGroupResponse::default().with_error_code(GROUP_AUTHORIZATION_FAILED);
        return encode_response(
            ApiKey::LeaveGroup,
            version,
            request.correlation_id(),
            &response,
        );
    }
    let codes = match shard
        .group_call(&body.group_id.0, GroupOp::Leave(leaving.clone()))
        .await
    {
        GroupAnswer::Codes(codes) => codes,
        other => return unexpected(request, &other),
    };
    let response = if version >= BATCHED_LEAVE_VERSION {
        LeaveGroupResponse::default()
            .with_error_code(NONE)
            .with_members(
                leaving
                    .into_iter()
                    .zip(codes)
                    .map(|((member, instance), code)| {
                        MemberResponse::default()
                            .with_member_id(text(member))
                            .with_group_instance_id(instance.map(text))
                            .with_error_code(code)
                    })
                    .collect(),
            )
    } else {
        LeaveGroupResponse::default()
            .with_error_code(codes.first().copied().unwrap_or(UNKNOWN_SERVER_ERROR))
    };
    encode_response(
        ApiKey::LeaveGroup,
        version,
        request.correlation_id(),
        &response,
    )
}

/// A coordinator answer of the wrong kind: a bug, reported as a closed
/// connection with a log line rather than a made-up response.
pub(super) fn unexpected(request: &Request, answer: &GroupAnswer) -> Result<Bytes, FrameError> {
    Err(FrameError::Encode {
        api_key: request.api_key,
        version: request.version(),
        source: anyhow::anyhow!("the coordinator answered {answer:?}"),
    })
}
