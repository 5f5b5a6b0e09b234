//! The transaction APIs, answered by each transactional id's coordinator
//! shard (see `broker::transactions`): AddPartitionsToTxn (key 24),
//! AddOffsetsToTxn (25), EndTxn (26), WriteTxnMarkers (27, between the
//! brokers of a cluster), and for tooling
//! DescribeTransactions (65), ListTransactions (66) and DescribeProducers
//! (61). EndTxn v5 and TxnOffsetCommit v5 belong to KIP-890's second part
//! (an epoch bump per transaction, transaction.version 2): not served, so
//! clients keep to the first part's versions.

use bytes::Bytes;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedState;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, ApiKey, DescribeProducersRequest, DescribeProducersResponse,
    DescribeTransactionsRequest, DescribeTransactionsResponse, EndTxnRequest, EndTxnResponse,
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TopicName, TransactionalId,
    WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;

use replication::metadata::acl;

use super::errors::{
    CLUSTER_AUTHORIZATION_FAILED, GROUP_AUTHORIZATION_FAILED, INVALID_REQUEST, NONE,
    OPERATION_NOT_ATTEMPTED, TOPIC_AUTHORIZATION_FAILED, TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    TRANSACTIONAL_ID_NOT_FOUND, UNKNOWN_SERVER_ERROR, UNKNOWN_TOPIC_OR_PARTITION,
    partition_error_code,
};
use super::{Handler, decode_body};
use crate::broker::Shard;
use crate::broker::groups::{OFFSETS_TOPIC, offsets_partition};
use crate::broker::partition_call::{PartitionOp, PartitionReply};
use crate::broker::transactions::{TxnAnswer, TxnOp};
use crate::frame::{FrameError, Request, encode_response};
use crate::txn::{TxnPartition, TxnState};

pub const ADD_PARTITIONS: Handler = Handler {
    api_key: ApiKey::AddPartitionsToTxn,
    min_version: 0,
    max_version: 5,
};
pub const ADD_OFFSETS: Handler = Handler {
    api_key: ApiKey::AddOffsetsToTxn,
    min_version: 0,
    max_version: 4,
};
pub const END: Handler = Handler {
    api_key: ApiKey::EndTxn,
    min_version: 0,
    max_version: 4,
};
pub const WRITE_MARKERS: Handler = Handler {
    api_key: ApiKey::WriteTxnMarkers,
    min_version: 1,
    max_version: 1,
};
pub const DESCRIBE: Handler = Handler {
    api_key: ApiKey::DescribeTransactions,
    min_version: 0,
    max_version: 0,
};
pub const LIST: Handler = Handler {
    api_key: ApiKey::ListTransactions,
    min_version: 0,
    max_version: 1,
};
pub const DESCRIBE_PRODUCERS: Handler = Handler {
    api_key: ApiKey::DescribeProducers,
    min_version: 0,
    max_version: 0,
};

/// The first AddPartitionsToTxn version that batches transactions (sent
/// by brokers, with verify_only, per KIP-890).
const BATCHED_VERSION: i16 = 4;
/// Transactional ids are stored with a 16-bit length, as in Kafka's
/// TransactionLogKey; a longer one cannot be stored.
pub const TRANSACTIONAL_ID_BYTES_MAX: usize = i16::MAX as usize;

/// The one code of a single-code answer.
fn code_of(answer: TxnAnswer) -> i16 {
    match answer {
        TxnAnswer::Codes(codes) => codes.first().copied().unwrap_or(NONE),
        TxnAnswer::Init(Err(code)) => code,
        TxnAnswer::Init(Ok(_)) | TxnAnswer::Described(_) => UNKNOWN_SERVER_ERROR,
    }
}

/// Whether a transactional id can name a transaction at all.
pub fn valid_transactional_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= TRANSACTIONAL_ID_BYTES_MAX
}

pub async fn add_partitions(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let version = request.version();
    let body: AddPartitionsToTxnRequest = decode_body(request)?;
    let response = if version >= BATCHED_VERSION
        && !shard.allowed_cluster(request, acl::operation::CLUSTER_ACTION)
    {
        // Brokers' verification (KIP-890): ClusterAction on the cluster.
        AddPartitionsToTxnResponse::default().with_error_code(CLUSTER_AUTHORIZATION_FAILED)
    } else if version >= BATCHED_VERSION {
        let mut results = Vec::with_capacity(body.transactions.len());
        for txn in body.transactions {
            let topics = add_one(
                shard,
                None,
                &txn.transactional_id,
                txn.producer_id.0,
                txn.producer_epoch,
                txn.verify_only,
                txn.topics,
            )
            .await;
            results.push(
                AddPartitionsToTxnResult::default()
                    .with_transactional_id(txn.transactional_id)
                    .with_topic_results(topics),
            );
        }
        AddPartitionsToTxnResponse::default()
            .with_error_code(NONE)
            .with_results_by_transaction(results)
    } else {
        let topics = add_one(
            shard,
            Some(request),
            &body.v3_and_below_transactional_id,
            body.v3_and_below_producer_id.0,
            body.v3_and_below_producer_epoch,
            false,
            body.v3_and_below_topics,
        )
        .await;
        AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(topics)
    };
    encode_response(
        ApiKey::AddPartitionsToTxn,
        version,
        request.correlation_id(),
        &response,
    )
}

/// One transaction's AddPartitionsToTxn: unknown partitions are
/// UNKNOWN_TOPIC_OR_PARTITION and the others OPERATION_NOT_ATTEMPTED, as
/// in Kafka; else the coordinator's code (or per partition, verifying).
/// A client's (`request`) needs Write on the transactional id and on
/// each topic (TOPIC_AUTHORIZATION_FAILED, the others not attempted).
async fn add_one(
    shard: &Shard,
    request: Option<&Request>,
    transactional_id: &TransactionalId,
    producer_id: i64,
    epoch: i16,
    verify_only: bool,
    topics: Vec<AddPartitionsToTxnTopic>,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let metadata = shard.metadata();
    let requested: Vec<TxnPartition> = topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|&p| (t.name.0.to_string(), p)))
        .collect();
    let unknown = |(topic, partition): &TxnPartition| {
        !(0..metadata.topic(topic).map_or(0, |t| t.partitions)).contains(partition)
    };
    let write = acl::operation::WRITE;
    let id_denied =
        request.is_some_and(|r| !shard.allowed_transactional_id(r, write, transactional_id));
    let topic_denied =
        |(topic, _): &TxnPartition| request.is_some_and(|r| !shard.allowed_topic(r, write, topic));
    let codes: Vec<i16> = if !valid_transactional_id(transactional_id) {
        vec![INVALID_REQUEST; requested.len()]
    } else if id_denied {
        vec![TRANSACTIONAL_ID_AUTHORIZATION_FAILED; requested.len()]
    } else if requested.iter().any(topic_denied) {
        requested
            .iter()
            .map(|p| {
                if topic_denied(p) {
                    TOPIC_AUTHORIZATION_FAILED
                } else {
                    OPERATION_NOT_ATTEMPTED
                }
            })
            .collect()
    } else if requested.iter().any(unknown) {
        requested
            .iter()
            .map(|p| {
                if unknown(p) {
                    UNKNOWN_TOPIC_OR_PARTITION
                } else {
                    OPERATION_NOT_ATTEMPTED
                }
            })
            .collect()
    } else if requested.is_empty() {
        Vec::new()
    } else {
        let op = if verify_only {
            TxnOp::Verify {
                producer_id,
                epoch,
                partitions: requested.clone(),
            }
        } else {
            TxnOp::AddPartitions {
                producer_id,
                epoch,
                partitions: requested.clone(),
            }
        };
        match shard.txn_call(transactional_id, op).await {
            TxnAnswer::Codes(codes) if verify_only => codes,
            answer => vec![code_of(answer); requested.len()],
        }
    };
    tracing::debug!(transactional_id = %transactional_id.0, ?codes, "AddPartitionsToTxn");
    let mut codes = codes.into_iter();
    topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|&p| {
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(p)
                        .with_partition_error_code(codes.next().unwrap_or(NONE))
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name)
                .with_results_by_partition(partitions)
        })
        .collect()
}

/// AddOffsetsToTxn: the group's `__consumer_offsets` partition joins the
/// transaction (its marker makes TxnOffsetCommit's offsets visible).
pub async fn add_offsets(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let version = request.version();
    let body: AddOffsetsToTxnRequest = decode_body(request)?;
    let code = if !valid_transactional_id(&body.transactional_id) || body.group_id.is_empty() {
        INVALID_REQUEST
    } else if !shard.allowed_transactional_id(
        request,
        acl::operation::WRITE,
        &body.transactional_id,
    ) {
        TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    } else if !shard.allowed_group(request, acl::operation::READ, &body.group_id) {
        GROUP_AUTHORIZATION_FAILED
    } else {
        match shard.offsets_topic_partitions().await {
            Err(code) => code,
            Ok(partitions) => {
                let partition = offsets_partition(&body.group_id, partitions);
                let op = TxnOp::AddPartitions {
                    producer_id: body.producer_id.0,
                    epoch: body.producer_epoch,
                    partitions: vec![(OFFSETS_TOPIC.to_string(), partition)],
                };
                code_of(shard.txn_call(&body.transactional_id, op).await)
            }
        }
    };
    let response = AddOffsetsToTxnResponse::default().with_error_code(code);
    encode_response(
        ApiKey::AddOffsetsToTxn,
        version,
        request.correlation_id(),
        &response,
    )
}

/// EndTxn: answered once the outcome is durable and its markers written.
pub async fn end(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let version = request.version();
    let body: EndTxnRequest = decode_body(request)?;
    let code = if !valid_transactional_id(&body.transactional_id) {
        INVALID_REQUEST
    } else if !shard.allowed_transactional_id(
        request,
        acl::operation::WRITE,
        &body.transactional_id,
    ) {
        TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    } else {
        let op = TxnOp::EndTxn {
            producer_id: body.producer_id.0,
            epoch: body.producer_epoch,
            commit: body.committed,
        };
        code_of(shard.txn_call(&body.transactional_id, op).await)
    };
    let response = EndTxnResponse::default()
        .with_error_code(code)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    encode_response(ApiKey::EndTxn, version, request.correlation_id(), &response)
}

/// WriteTxnMarkers (key 27), sent by a transaction coordinator on another
/// broker of the cluster: each marker written to its partitions here as
/// the coordinator's own are (acks=all), a code per partition
/// (NOT_LEADER_OR_FOLLOWER where this broker does not lead it: the
/// coordinator asks the leader again). A broker alone has no peer to send
/// it: every partition is CLUSTER_AUTHORIZATION_FAILED there, so no client
/// can end another's transaction. In a cluster it needs ClusterAction on
/// the cluster (with an authorizer; as in Kafka, anyone without one).
pub async fn write_markers(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let version = request.version();
    let body: WriteTxnMarkersRequest = decode_body(request)?;
    let refused =
        !shard.in_cluster() || !shard.allowed_cluster(request, acl::operation::CLUSTER_ACTION);
    let mut results = Vec::with_capacity(body.markers.len());
    for marker in body.markers {
        let op = || PartitionOp::WriteMarker {
            producer_id: marker.producer_id.0,
            epoch: marker.producer_epoch,
            commit: marker.transaction_result,
            coordinator_epoch: marker.coordinator_epoch,
        };
        let mut topics = Vec::with_capacity(marker.topics.len());
        for topic in marker.topics {
            let writes = topic.partition_indexes.iter().map(|&partition| {
                let tp = engine::TopicPartition::new(topic.name.0.to_string(), partition);
                let written = shard.partition_call(tp, op());
                async move {
                    let code = if refused {
                        CLUSTER_AUTHORIZATION_FAILED
                    } else {
                        written
                            .await
                            .err()
                            .map_or(NONE, |e| partition_error_code(&e))
                    };
                    WritableTxnMarkerPartitionResult::default()
                        .with_partition_index(partition)
                        .with_error_code(code)
                }
            });
            let partitions = futures::future::join_all(writes).await;
            topics.push(
                WritableTxnMarkerTopicResult::default()
                    .with_name(topic.name)
                    .with_partitions(partitions),
            );
        }
        results.push(
            WritableTxnMarkerResult::default()
                .with_producer_id(marker.producer_id)
                .with_topics(topics),
        );
    }
    let response = WriteTxnMarkersResponse::default().with_markers(results);
    encode_response(
        ApiKey::WriteTxnMarkers,
        version,
        request.correlation_id(),
        &response,
    )
}

pub async fn describe(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let version = request.version();
    let body: DescribeTransactionsRequest = decode_body(request)?;
    let mut states = Vec::with_capacity(body.transactional_ids.len());
    for id in body.transactional_ids {
        let entry = TransactionState::default().with_transactional_id(id.clone());
        if !shard.allowed_transactional_id(request, acl::operation::DESCRIBE, &id) {
            states.push(entry.with_error_code(TRANSACTIONAL_ID_AUTHORIZATION_FAILED));
            continue;
        }
        let described = if valid_transactional_id(&id) {
            shard.txn_call(&id, TxnOp::Describe).await
        } else {
            TxnAnswer::Described(None)
        };
        states.push(match described {
            TxnAnswer::Described(Some(m)) => {
                let mut topics: Vec<TopicData> = Vec::new();
                for (topic, partition) in m.partitions {
                    match topics.last_mut() {
                        Some(t) if *t.topic.0 == *topic => t.partitions.push(partition),
                        _ => topics.push(
                            TopicData::default()
                                .with_topic(TopicName(StrBytes::from_string(topic)))
                                .with_partitions(vec![partition]),
                        ),
                    }
                }
                entry
                    .with_error_code(NONE)
                    .with_transaction_state(StrBytes::from_static_str(m.state.name()))
                    .with_transaction_timeout_ms(m.timeout_ms)
                    .with_transaction_start_time_ms(if m.state == TxnState::Empty {
                        -1
                    } else {
                        m.start_ms
                    })
                    .with_producer_id(ProducerId(m.producer_id))
                    .with_producer_epoch(m.epoch)
                    .with_topics(topics)
            }
            TxnAnswer::Described(None) => entry
                .with_error_code(TRANSACTIONAL_ID_NOT_FOUND)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
                .with_transaction_start_time_ms(-1),
            other => entry.with_error_code(code_of(other)),
        });
    }
    let response = DescribeTransactionsResponse::default().with_transaction_states(states);
    encode_response(
        ApiKey::DescribeTransactions,
        version,
        request.correlation_id(),
        &response,
    )
}

/// The states ListTransactions filters on, as Kafka names them.
const STATES: [TxnState; 6] = [
    TxnState::Empty,
    TxnState::Ongoing,
    TxnState::PrepareCommit,
    TxnState::PrepareAbort,
    TxnState::CompleteCommit,
    TxnState::CompleteAbort,
];

pub async fn list(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let version = request.version();
    let body: ListTransactionsRequest = decode_body(request)?;
    let unknown: Vec<StrBytes> = body
        .state_filters
        .iter()
        .filter(|f| !STATES.iter().any(|s| s.name() == f.as_str()))
        .cloned()
        .collect();
    let now = engine::rt::wall_clock_ms();
    let states = shard
        .list_transactions()
        .await
        .into_iter()
        // ACLs: only the transactional ids the principal may describe.
        .filter(|t| {
            shard.allowed_transactional_id(request, acl::operation::DESCRIBE, &t.transactional_id)
        })
        .filter(|t| {
            body.state_filters.is_empty()
                || body
                    .state_filters
                    .iter()
                    .any(|f| f.as_str() == t.state.name())
        })
        .filter(|t| {
            body.producer_id_filters.is_empty()
                || body
                    .producer_id_filters
                    .contains(&ProducerId(t.producer_id))
        })
        // v1: only transactions running longer than the filter (-1: all).
        .filter(|t| {
            body.duration_filter < 0
                || (t.start_ms >= 0 && now.saturating_sub(t.start_ms) > body.duration_filter)
        })
        .map(|t| {
            ListedState::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(t.transactional_id)))
                .with_producer_id(ProducerId(t.producer_id))
                .with_transaction_state(StrBytes::from_static_str(t.state.name()))
        })
        .collect();
    let response = ListTransactionsResponse::default()
        .with_error_code(NONE)
        .with_unknown_state_filters(unknown)
        .with_transaction_states(states);
    encode_response(
        ApiKey::ListTransactions,
        version,
        request.correlation_id(),
        &response,
    )
}

pub async fn describe_producers(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let version = request.version();
    let body: DescribeProducersRequest = decode_body(request)?;
    let metadata = shard.metadata();
    let mut topics = Vec::with_capacity(body.topics.len());
    for topic in body.topics {
        let known = metadata.topic(&topic.name.0).map_or(0, |t| t.partitions);
        let (existing, missing): (Vec<i32>, Vec<i32>) = topic
            .partition_indexes
            .iter()
            .partition(|p| (0..known).contains(*p));
        let ops = existing.iter().map(|&p| (p, PartitionOp::Producers));
        let mut partitions: Vec<PartitionResponse> = shard
            .per_partition_as(request, acl::operation::READ, &topic.name.0, ops)
            .await
            .into_iter()
            .map(|(index, result)| {
                let entry = PartitionResponse::default().with_partition_index(index);
                match result {
                    Ok(PartitionReply::Producers(views)) => {
                        entry.with_error_code(NONE).with_active_producers(
                            views
                                .into_iter()
                                .map(|v| {
                                    ProducerState::default()
                                        .with_producer_id(ProducerId(v.producer_id))
                                        .with_producer_epoch(i32::from(v.epoch))
                                        .with_last_sequence(v.last_sequence)
                                        .with_last_timestamp(v.last_append_ms)
                                        .with_coordinator_epoch(v.coordinator_epoch)
                                        .with_current_txn_start_offset(
                                            v.txn_start_offset.map_or(-1, |o| o.get()),
                                        )
                                })
                                .collect(),
                        )
                    }
                    Ok(_) => entry.with_error_code(UNKNOWN_SERVER_ERROR),
                    Err(e) => entry.with_error_code(partition_error_code(&e)),
                }
            })
            .collect();
        partitions.extend(missing.into_iter().map(|p| {
            PartitionResponse::default()
                .with_partition_index(p)
                .with_error_code(UNKNOWN_TOPIC_OR_PARTITION)
        }));
        topics.push(
            TopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    let response = DescribeProducersResponse::default().with_topics(topics);
    encode_response(
        ApiKey::DescribeProducers,
        version,
        request.correlation_id(),
        &response,
    )
}
