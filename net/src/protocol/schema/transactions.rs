//! Request tables of the transaction APIs (see the parent module for the
//! notation).

use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::{
    ProducerId, TransactionalId, add_partitions_to_txn_request, describe_producers_request,
    txn_offset_commit_request, write_txn_markers_request,
};
use kafka_protocol::protocol::StrBytes;

use super::Kind::{Bool, Int16, Int32, Int64, Str};
use super::{Message, array, field, message};

pub(super) const ADD_PARTITIONS_TO_TXN: Message = message!(AddPartitionsToTxnRequest, Some(ApiKey::AddPartitionsToTxn), 0..=5, flexible 3, [
    field!(transactions, 4.., array!(add_partitions_to_txn_request::AddPartitionsToTxnTransaction, [
        field!(transactional_id, 4.., Str),
        field!(producer_id, 4.., Int64),
        field!(producer_epoch, 4.., Int16),
        field!(verify_only, 4.., Bool),
        field!(topics, 4.., array!(add_partitions_to_txn_request::AddPartitionsToTxnTopic, [
            field!(name, 0.., Str),
            field!(partitions, 0.., array!(i32, Int32)),
        ])),
    ])),
    field!(v3_and_below_transactional_id, 0..=3, Str),
    field!(v3_and_below_producer_id, 0..=3, Int64),
    field!(v3_and_below_producer_epoch, 0..=3, Int16),
    field!(v3_and_below_topics, 0..=3, array!(add_partitions_to_txn_request::AddPartitionsToTxnTopic, [
        field!(name, 0.., Str),
        field!(partitions, 0.., array!(i32, Int32)),
    ])),
]);

pub(super) const ADD_OFFSETS_TO_TXN: Message = message!(AddOffsetsToTxnRequest, Some(ApiKey::AddOffsetsToTxn), 0..=4, flexible 3, [
    field!(transactional_id, 0.., Str),
    field!(producer_id, 0.., Int64),
    field!(producer_epoch, 0.., Int16),
    field!(group_id, 0.., Str),
]);

pub(super) const END_TXN: Message = message!(EndTxnRequest, Some(ApiKey::EndTxn), 0..=5, flexible 3, [
    field!(transactional_id, 0.., Str),
    field!(producer_id, 0.., Int64),
    field!(producer_epoch, 0.., Int16),
    field!(committed, 0.., Bool),
]);

pub(super) const WRITE_TXN_MARKERS: Message = message!(WriteTxnMarkersRequest, Some(ApiKey::WriteTxnMarkers), 1..=1, flexible 1, [
    field!(markers, 0.., array!(write_txn_markers_request::WritableTxnMarker, [
        field!(producer_id, 0.., Int64),
        field!(producer_epoch, 0.., Int16),
        field!(transaction_result, 0.., Bool),
        field!(topics, 0.., array!(write_txn_markers_request::WritableTxnMarkerTopic, [
            field!(name, 0.., Str),
            field!(partition_indexes, 0.., array!(i32, Int32)),
        ])),
        field!(coordinator_epoch, 0.., Int32),
    ])),
]);

pub(super) const TXN_OFFSET_COMMIT: Message = message!(TxnOffsetCommitRequest, Some(ApiKey::TxnOffsetCommit), 0..=5, flexible 3, [
    field!(transactional_id, 0.., Str),
    field!(group_id, 0.., Str),
    field!(producer_id, 0.., Int64),
    field!(producer_epoch, 0.., Int16),
    field!(generation_id, 3.., Int32),
    field!(member_id, 3.., Str),
    field!(group_instance_id, 3.., Str, nullable),
    field!(topics, 0.., array!(txn_offset_commit_request::TxnOffsetCommitRequestTopic, [
        field!(name, 0.., Str),
        field!(partitions, 0.., array!(txn_offset_commit_request::TxnOffsetCommitRequestPartition, [
            field!(partition_index, 0.., Int32),
            field!(committed_offset, 0.., Int64),
            field!(committed_leader_epoch, 2.., Int32),
            field!(committed_metadata, 0.., Str, nullable),
        ])),
    ])),
]);

pub(super) const DESCRIBE_PRODUCERS: Message = message!(DescribeProducersRequest, Some(ApiKey::DescribeProducers), 0..=0, flexible 0, [
    field!(topics, 0.., array!(describe_producers_request::TopicRequest, [
        field!(name, 0.., Str),
        field!(partition_indexes, 0.., array!(i32, Int32)),
    ])),
]);

pub(super) const DESCRIBE_TRANSACTIONS: Message = message!(DescribeTransactionsRequest, Some(ApiKey::DescribeTransactions), 0..=0, flexible 0, [
    field!(transactional_ids, 0.., array!(TransactionalId, Str)),
]);

pub(super) const LIST_TRANSACTIONS: Message = message!(ListTransactionsRequest, Some(ApiKey::ListTransactions), 0..=2, flexible 0, [
    field!(state_filters, 0.., array!(StrBytes, Str)),
    field!(producer_id_filters, 0.., array!(ProducerId, Int64)),
    field!(duration_filter, 1.., Int64),
    field!(transactional_id_pattern, 2.., Str, nullable),
]);
