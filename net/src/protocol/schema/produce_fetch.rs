//! Request tables of the data-path APIs: Produce, Fetch, ListOffsets,
//! OffsetForLeaderEpoch, Metadata, ApiVersions (see the parent module for
//! the notation).

use kafka_protocol::messages::{
    ApiKey, fetch_request, list_offsets_request, metadata_request, offset_for_leader_epoch_request,
    produce_request,
};

use super::Kind::{Bool, Int8, Int16, Int32, Int64, Records, Str, Uuid};
use super::{Message, array, field, message, object};

pub(super) const PRODUCE: Message = message!(ProduceRequest, Some(ApiKey::Produce), 3..=13, flexible 9, [
    field!(transactional_id, 0.., Str, nullable),
    field!(acks, 0.., Int16),
    field!(timeout_ms, 0.., Int32),
    field!(topic_data, 0.., array!(produce_request::TopicProduceData, [
        field!(name, 0..=12, Str),
        field!(topic_id, 13.., Uuid),
        field!(partition_data, 0.., array!(produce_request::PartitionProduceData, [
            field!(index, 0.., Int32),
            field!(records, 0.., Records, nullable),
        ])),
    ])),
]);

pub(super) const FETCH: Message = message!(FetchRequest, Some(ApiKey::Fetch), 4..=18, flexible 12, [
    field!(replica_id, 0..=14, Int32),
    field!(max_wait_ms, 0.., Int32),
    field!(min_bytes, 0.., Int32),
    field!(max_bytes, 0.., Int32),
    field!(isolation_level, 0.., Int8),
    field!(session_id, 7.., Int32),
    field!(session_epoch, 7.., Int32),
    field!(topics, 0.., array!(fetch_request::FetchTopic, [
        field!(topic, 0..=12, Str),
        field!(topic_id, 13.., Uuid),
        field!(partitions, 0.., array!(fetch_request::FetchPartition, [
            field!(partition, 0.., Int32),
            field!(current_leader_epoch, 9.., Int32),
            field!(fetch_offset, 0.., Int64),
            field!(last_fetched_epoch, 12.., Int32),
            field!(log_start_offset, 5.., Int64),
            field!(partition_max_bytes, 0.., Int32),
            field!(replica_directory_id, 17.., Uuid, tag 0),
            field!(high_watermark, 18.., Int64, tag 1),
        ])),
    ])),
    field!(forgotten_topics_data, 7.., array!(fetch_request::ForgottenTopic, [
        field!(topic, 7..=12, Str),
        field!(topic_id, 13.., Uuid),
        field!(partitions, 7.., array!(i32, Int32)),
    ])),
    field!(rack_id, 11.., Str),
    field!(cluster_id, 0.., Str, nullable, tag 0),
    field!(replica_state, 15.., object!([
        field!(replica_id, 15.., Int32),
        field!(replica_epoch, 15.., Int64),
    ]), tag 1),
]);

pub(super) const LIST_OFFSETS: Message = message!(ListOffsetsRequest, Some(ApiKey::ListOffsets), 1..=10, flexible 6, [
    field!(replica_id, 0.., Int32),
    field!(isolation_level, 2.., Int8),
    field!(topics, 0.., array!(list_offsets_request::ListOffsetsTopic, [
        field!(name, 0.., Str),
        field!(partitions, 0.., array!(list_offsets_request::ListOffsetsPartition, [
            field!(partition_index, 0.., Int32),
            field!(current_leader_epoch, 4.., Int32),
            field!(timestamp, 0.., Int64),
        ])),
    ])),
    field!(timeout_ms, 10.., Int32),
]);

pub(super) const OFFSET_FOR_LEADER_EPOCH: Message = message!(OffsetForLeaderEpochRequest, Some(ApiKey::OffsetForLeaderEpoch), 2..=4, flexible 4, [
    field!(replica_id, 3.., Int32),
    field!(topics, 0.., array!(offset_for_leader_epoch_request::OffsetForLeaderTopic, [
        field!(topic, 0.., Str),
        field!(partitions, 0.., array!(offset_for_leader_epoch_request::OffsetForLeaderPartition, [
            field!(partition, 0.., Int32),
            field!(current_leader_epoch, 2.., Int32),
            field!(leader_epoch, 0.., Int32),
        ])),
    ])),
]);

pub(super) const METADATA: Message = message!(MetadataRequest, Some(ApiKey::Metadata), 0..=13, flexible 9, [
    field!(topics, 0.., array!(metadata_request::MetadataRequestTopic, [
        field!(topic_id, 10.., Uuid),
        field!(name, 0.., Str, nullable),
    ]), nullable),
    field!(allow_auto_topic_creation, 4.., Bool),
    field!(include_cluster_authorized_operations, 8..=10, Bool),
    field!(include_topic_authorized_operations, 8.., Bool),
]);

pub(super) const API_VERSIONS: Message = message!(ApiVersionsRequest, Some(ApiKey::ApiVersions), 0..=4, flexible 3, [
    field!(client_software_name, 3.., Str),
    field!(client_software_version, 3.., Str),
]);
