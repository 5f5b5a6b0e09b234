//! Request tables of the group APIs, of the consumer protocol's
//! subscription and assignment that the coordinator decodes, and of
//! InitProducerId (see the parent module for the notation).

use kafka_protocol::messages::{
    ApiKey, GroupId, TopicName, consumer_group_heartbeat_request, consumer_protocol_assignment,
    consumer_protocol_subscription, join_group_request, leave_group_request, offset_commit_request,
    offset_delete_request, offset_fetch_request, sync_group_request,
};
use kafka_protocol::protocol::StrBytes;

use super::Kind::{Bool, Bytes, Int8, Int16, Int32, Int64, Str, Uuid};
use super::{Message, array, field, message};

pub(super) const FIND_COORDINATOR: Message = message!(FindCoordinatorRequest, Some(ApiKey::FindCoordinator), 0..=6, flexible 3, [
    field!(key, 0..=3, Str),
    field!(key_type, 1.., Int8),
    field!(coordinator_keys, 4.., array!(StrBytes, Str)),
]);

pub(super) const JOIN_GROUP: Message = message!(JoinGroupRequest, Some(ApiKey::JoinGroup), 0..=9, flexible 6, [
    field!(group_id, 0.., Str),
    field!(session_timeout_ms, 0.., Int32),
    field!(rebalance_timeout_ms, 1.., Int32),
    field!(member_id, 0.., Str),
    field!(group_instance_id, 5.., Str, nullable),
    field!(protocol_type, 0.., Str),
    field!(protocols, 0.., array!(join_group_request::JoinGroupRequestProtocol, [
        field!(name, 0.., Str),
        field!(metadata, 0.., Bytes),
    ])),
    field!(reason, 8.., Str, nullable),
]);

pub(super) const SYNC_GROUP: Message = message!(SyncGroupRequest, Some(ApiKey::SyncGroup), 0..=5, flexible 4, [
    field!(group_id, 0.., Str),
    field!(generation_id, 0.., Int32),
    field!(member_id, 0.., Str),
    field!(group_instance_id, 3.., Str, nullable),
    field!(protocol_type, 5.., Str, nullable),
    field!(protocol_name, 5.., Str, nullable),
    field!(assignments, 0.., array!(sync_group_request::SyncGroupRequestAssignment, [
        field!(member_id, 0.., Str),
        field!(assignment, 0.., Bytes),
    ])),
]);

pub(super) const HEARTBEAT: Message = message!(HeartbeatRequest, Some(ApiKey::Heartbeat), 0..=4, flexible 4, [
    field!(group_id, 0.., Str),
    field!(generation_id, 0.., Int32),
    field!(member_id, 0.., Str),
    field!(group_instance_id, 3.., Str, nullable),
]);

pub(super) const LEAVE_GROUP: Message = message!(LeaveGroupRequest, Some(ApiKey::LeaveGroup), 0..=5, flexible 4, [
    field!(group_id, 0.., Str),
    field!(member_id, 0..=2, Str),
    field!(members, 3.., array!(leave_group_request::MemberIdentity, [
        field!(member_id, 3.., Str),
        field!(group_instance_id, 3.., Str, nullable),
        field!(reason, 5.., Str, nullable),
    ])),
]);

pub(super) const OFFSET_COMMIT: Message = message!(OffsetCommitRequest, Some(ApiKey::OffsetCommit), 2..=9, flexible 8, [
    field!(group_id, 0.., Str),
    field!(generation_id_or_member_epoch, 0.., Int32),
    field!(member_id, 0.., Str),
    field!(group_instance_id, 7.., Str, nullable),
    field!(retention_time_ms, 0..=4, Int64),
    field!(topics, 0.., array!(offset_commit_request::OffsetCommitRequestTopic, [
        field!(name, 0.., Str),
        field!(partitions, 0.., array!(offset_commit_request::OffsetCommitRequestPartition, [
            field!(partition_index, 0.., Int32),
            field!(committed_offset, 0.., Int64),
            field!(committed_leader_epoch, 6.., Int32),
            field!(committed_metadata, 0.., Str, nullable),
        ])),
    ])),
]);

pub(super) const OFFSET_FETCH: Message = message!(OffsetFetchRequest, Some(ApiKey::OffsetFetch), 1..=9, flexible 6, [
    field!(group_id, 0..=7, Str),
    field!(topics, 0..=7, array!(offset_fetch_request::OffsetFetchRequestTopic, [
        field!(name, 0..=7, Str),
        field!(partition_indexes, 0..=7, array!(i32, Int32)),
    ]), nullable),
    field!(groups, 8.., array!(offset_fetch_request::OffsetFetchRequestGroup, [
        field!(group_id, 8.., Str),
        field!(member_id, 9.., Str, nullable),
        field!(member_epoch, 9.., Int32),
        field!(topics, 8.., array!(offset_fetch_request::OffsetFetchRequestTopics, [
            field!(name, 8.., Str),
            field!(partition_indexes, 8.., array!(i32, Int32)),
        ]), nullable),
    ])),
    field!(require_stable, 7.., Bool),
]);

pub(super) const LIST_GROUPS: Message = message!(ListGroupsRequest, Some(ApiKey::ListGroups), 0..=5, flexible 3, [
    field!(states_filter, 4.., array!(StrBytes, Str)),
    field!(types_filter, 5.., array!(StrBytes, Str)),
]);

pub(super) const DESCRIBE_GROUPS: Message = message!(DescribeGroupsRequest, Some(ApiKey::DescribeGroups), 0..=6, flexible 5, [
    field!(groups, 0.., array!(GroupId, Str)),
    field!(include_authorized_operations, 3.., Bool),
]);

pub(super) const DELETE_GROUPS: Message = message!(DeleteGroupsRequest, Some(ApiKey::DeleteGroups), 0..=2, flexible 2, [
    field!(groups_names, 0.., array!(GroupId, Str)),
]);

pub(super) const OFFSET_DELETE: Message = message!(OffsetDeleteRequest, Some(ApiKey::OffsetDelete), 0..=0, never flexible, [
    field!(group_id, 0.., Str),
    field!(topics, 0.., array!(offset_delete_request::OffsetDeleteRequestTopic, [
        field!(name, 0.., Str),
        field!(partitions, 0.., array!(offset_delete_request::OffsetDeleteRequestPartition, [
            field!(partition_index, 0.., Int32),
        ])),
    ])),
]);

pub(super) const CONSUMER_GROUP_HEARTBEAT: Message = message!(ConsumerGroupHeartbeatRequest, Some(ApiKey::ConsumerGroupHeartbeat), 0..=1, flexible 0, [
    field!(group_id, 0.., Str),
    field!(member_id, 0.., Str),
    field!(member_epoch, 0.., Int32),
    field!(instance_id, 0.., Str, nullable),
    field!(rack_id, 0.., Str, nullable),
    field!(rebalance_timeout_ms, 0.., Int32),
    field!(subscribed_topic_names, 0.., array!(TopicName, Str), nullable),
    field!(subscribed_topic_regex, 1.., Str, nullable),
    field!(server_assignor, 0.., Str, nullable),
    field!(topic_partitions, 0.., array!(consumer_group_heartbeat_request::TopicPartitions, [
        field!(topic_id, 0.., Uuid),
        field!(partitions, 0.., array!(i32, Int32)),
    ]), nullable),
]);

pub(super) const CONSUMER_GROUP_DESCRIBE: Message = message!(ConsumerGroupDescribeRequest, Some(ApiKey::ConsumerGroupDescribe), 0..=1, flexible 0, [
    field!(group_ids, 0.., array!(GroupId, Str)),
    field!(include_authorized_operations, 0.., Bool),
]);

pub(super) const CONSUMER_PROTOCOL_SUBSCRIPTION: Message = message!(ConsumerProtocolSubscription, None, 0..=3, never flexible, [
    field!(topics, 0.., array!(StrBytes, Str)),
    field!(user_data, 0.., Bytes, nullable),
    field!(owned_partitions, 1.., array!(consumer_protocol_subscription::TopicPartition, [
        field!(topic, 1.., Str),
        field!(partitions, 1.., array!(i32, Int32)),
    ])),
    field!(generation_id, 2.., Int32),
    field!(rack_id, 3.., Str, nullable),
]);

pub(super) const CONSUMER_PROTOCOL_ASSIGNMENT: Message = message!(ConsumerProtocolAssignment, None, 0..=3, never flexible, [
    field!(assigned_partitions, 0.., array!(consumer_protocol_assignment::TopicPartition, [
        field!(topic, 0.., Str),
        field!(partitions, 0.., array!(i32, Int32)),
    ])),
    field!(user_data, 0.., Bytes, nullable),
]);

pub(super) const INIT_PRODUCER_ID: Message = message!(InitProducerIdRequest, Some(ApiKey::InitProducerId), 0..=5, flexible 2, [
    field!(transactional_id, 0.., Str, nullable),
    field!(transaction_timeout_ms, 0.., Int32),
    field!(producer_id, 3.., Int64),
    field!(producer_epoch, 3.., Int16),
]);
