//! One module per Kafka API, and the only table from API key to handler.
//! ApiVersions advertises exactly this table, so an API is advertised only
//! once its handler is here.

mod acls;
mod alter_configs;
mod api_versions;
mod broker_configs;
mod config_resource;
mod consumer_group;
mod create_partitions;
mod create_topics;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod describe_log_dirs;
mod elect_leaders;
pub mod error_codes;
pub mod errors;
mod fetch;
pub(crate) mod fetch_session;
mod find_coordinator;
mod group_admin;
mod group_membership;
mod group_offsets;
mod incremental_alter_configs;
mod init_producer_id;
mod list_offsets;
pub mod metadata;
mod offset_for_leader_epoch;
pub(crate) mod produce;
mod produce_legacy;
mod reassignments;
mod replica_assignment;
pub mod sasl;
mod transactions;
mod user_scram;

pub use config_resource::{broker_keys, topic_key_of};

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;

use crate::broker::Shard;
use crate::frame::{FrameError, Request};

/// A handled API and the versions we serve.
#[derive(Debug, Clone, Copy)]
pub struct Handler {
    pub api_key: ApiKey,
    pub min_version: i16,
    pub max_version: i16,
}

/// Every API the broker serves.
pub const HANDLERS: &[Handler] = &[
    produce::HANDLER,
    fetch::HANDLER,
    list_offsets::HANDLER,
    offset_for_leader_epoch::HANDLER,
    metadata::HANDLER,
    api_versions::HANDLER,
    sasl::HANDSHAKE,
    sasl::AUTHENTICATE,
    user_scram::DESCRIBE,
    user_scram::ALTER,
    acls::DESCRIBE,
    acls::CREATE,
    acls::DELETE,
    create_topics::HANDLER,
    delete_topics::HANDLER,
    create_partitions::HANDLER,
    describe_configs::HANDLER,
    alter_configs::HANDLER,
    incremental_alter_configs::HANDLER,
    delete_records::HANDLER,
    describe_cluster::HANDLER,
    describe_log_dirs::HANDLER,
    elect_leaders::HANDLER,
    reassignments::ALTER,
    reassignments::LIST,
    find_coordinator::HANDLER,
    group_membership::JOIN,
    group_membership::SYNC,
    group_membership::HEARTBEAT,
    group_membership::LEAVE,
    group_offsets::COMMIT,
    group_offsets::FETCH,
    group_admin::LIST,
    group_admin::DESCRIBE,
    group_admin::DELETE,
    group_admin::DELETE_OFFSETS,
    consumer_group::HEARTBEAT,
    consumer_group::DESCRIBE,
    init_producer_id::HANDLER,
    transactions::ADD_PARTITIONS,
    transactions::ADD_OFFSETS,
    transactions::END,
    transactions::WRITE_MARKERS,
    group_offsets::TXN_COMMIT,
    transactions::DESCRIBE,
    transactions::LIST,
    transactions::DESCRIBE_PRODUCERS,
];

pub fn find(api_key: ApiKey) -> Option<&'static Handler> {
    HANDLERS.iter().find(|h| h.api_key == api_key)
}

/// What the connection does with a request.
pub enum Outcome {
    /// Send this response frame.
    Respond(Bytes),
    /// Send this response frame, in pieces (a Fetch's records are not
    /// copied into it).
    RespondInParts(Vec<Bytes>),
    /// Send nothing (Produce with acks=0).
    NoResponse,
    /// Close the connection; the reason is logged.
    Close(FrameError),
    /// The request's ordered part is done; this future gives the outcome.
    /// The connection may start its next request meanwhile; responses
    /// still leave in request order.
    Pending(futures::future::LocalBoxFuture<'static, Outcome>),
    /// Close the connection: the API or version is not served. Kafka
    /// brokers close the connection here too; clients learn the supported
    /// versions from ApiVersions first.
    Unsupported { api_key: ApiKey, version: i16 },
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Respond(frame) => write!(f, "Respond({} bytes)", frame.len()),
            Outcome::RespondInParts(parts) => write!(
                f,
                "RespondInParts({} bytes in {} parts)",
                parts.iter().map(Bytes::len).sum::<usize>(),
                parts.len()
            ),
            Outcome::NoResponse => write!(f, "NoResponse"),
            Outcome::Close(e) => write!(f, "Close({e})"),
            Outcome::Pending(_) => write!(f, "Pending"),
            Outcome::Unsupported { api_key, version } => {
                write!(f, "Unsupported({api_key:?} v{version})")
            }
        }
    }
}

/// Runs the handler of a decoded request.
pub async fn dispatch(shard: &Shard, request: &Request) -> Outcome {
    let version = request.version();
    let served =
        find(request.api_key).is_some_and(|h| (h.min_version..=h.max_version).contains(&version));
    let result = match request.api_key {
        // ApiVersions answers every version: a client that asks for a newer
        // one than we serve gets our table in a v0 response.
        ApiKey::ApiVersions => api_versions::handle(request),
        _ if !served => {
            return Outcome::Unsupported {
                api_key: request.api_key,
                version,
            };
        }
        ApiKey::Produce if version <= produce_legacy::LAST_LEGACY_VERSION => {
            match produce_legacy::handle(request) {
                Ok(Some(frame)) => Ok(frame),
                Ok(None) => return Outcome::NoResponse,
                Err(e) => Err(e),
            }
        }
        ApiKey::Produce => match produce::handle(shard, request).await {
            Ok(pending) => return Outcome::Pending(pending),
            Err(e) => Err(e),
        },
        ApiKey::Fetch => {
            return match fetch::handle(shard, request).await {
                Ok(parts) => Outcome::RespondInParts(parts),
                Err(e) => Outcome::Close(e),
            };
        }
        ApiKey::ListOffsets => list_offsets::handle(shard, request).await,
        ApiKey::OffsetForLeaderEpoch => offset_for_leader_epoch::handle(shard, request).await,
        ApiKey::Metadata => metadata::handle(shard, request).await,
        ApiKey::CreateTopics => create_topics::handle(shard, request).await,
        ApiKey::DeleteTopics => delete_topics::handle(shard, request).await,
        ApiKey::CreatePartitions => create_partitions::handle(shard, request).await,
        ApiKey::DescribeConfigs => describe_configs::handle(shard, request).await,
        ApiKey::AlterConfigs => alter_configs::handle(shard, request).await,
        ApiKey::IncrementalAlterConfigs => incremental_alter_configs::handle(shard, request).await,
        ApiKey::DeleteRecords => delete_records::handle(shard, request).await,
        ApiKey::DescribeCluster => describe_cluster::handle(shard, request).await,
        ApiKey::DescribeLogDirs => describe_log_dirs::handle(shard, request).await,
        ApiKey::ElectLeaders => elect_leaders::handle(shard, request).await,
        ApiKey::DescribeUserScramCredentials => user_scram::describe(shard, request),
        ApiKey::DescribeAcls => acls::describe(shard, request),
        ApiKey::CreateAcls => acls::create(shard, request).await,
        ApiKey::DeleteAcls => acls::delete(shard, request).await,
        ApiKey::AlterUserScramCredentials => user_scram::alter(shard, request).await,
        ApiKey::AlterPartitionReassignments => reassignments::alter(shard, request).await,
        ApiKey::ListPartitionReassignments => reassignments::list(shard, request),
        ApiKey::FindCoordinator => find_coordinator::handle(shard, request).await,
        ApiKey::JoinGroup => group_membership::join(shard, request).await,
        ApiKey::SyncGroup => group_membership::sync(shard, request).await,
        ApiKey::Heartbeat => group_membership::heartbeat(shard, request).await,
        ApiKey::LeaveGroup => group_membership::leave(shard, request).await,
        ApiKey::OffsetCommit => group_offsets::commit(shard, request).await,
        ApiKey::OffsetFetch => group_offsets::fetch(shard, request).await,
        ApiKey::ListGroups => group_admin::list(shard, request).await,
        ApiKey::DescribeGroups => group_admin::describe(shard, request).await,
        ApiKey::DeleteGroups => group_admin::delete(shard, request).await,
        ApiKey::OffsetDelete => group_admin::delete_offsets(shard, request).await,
        ApiKey::ConsumerGroupHeartbeat => consumer_group::heartbeat(shard, request).await,
        ApiKey::ConsumerGroupDescribe => consumer_group::describe(shard, request).await,
        ApiKey::InitProducerId => init_producer_id::handle(shard, request).await,
        ApiKey::AddPartitionsToTxn => transactions::add_partitions(shard, request).await,
        ApiKey::AddOffsetsToTxn => transactions::add_offsets(shard, request).await,
        ApiKey::EndTxn => transactions::end(shard, request).await,
        ApiKey::WriteTxnMarkers => transactions::write_markers(shard, request).await,
        ApiKey::TxnOffsetCommit => group_offsets::txn_commit(shard, request).await,
        ApiKey::DescribeTransactions => transactions::describe(shard, request).await,
        ApiKey::ListTransactions => transactions::list(shard, request).await,
        ApiKey::DescribeProducers => transactions::describe_producers(shard, request).await,
        api_key => return Outcome::Unsupported { api_key, version },
    };
    match result {
        Ok(frame) => Outcome::Respond(frame),
        Err(e) => Outcome::Close(e),
    }
}

/// Dispatch for requests that need no shard (tests of the framing layer).
pub fn dispatch_stateless(request: &Request) -> Outcome {
    match request.api_key {
        ApiKey::ApiVersions => match api_versions::handle(request) {
            Ok(frame) => Outcome::Respond(frame),
            Err(e) => Outcome::Close(e),
        },
        api_key => Outcome::Unsupported {
            api_key,
            version: request.version(),
        },
    }
}

/// Decodes a request's body at its version; a body that does not decode
/// closes the connection (with a log line) as malformed. A body is decoded
/// only once the pre-decode walk passed it (`decode_request` walks every
/// body with a table; one built otherwise is walked here).
pub(crate) fn decode_body<T: kafka_protocol::protocol::Decodable>(
    request: &Request,
) -> Result<T, FrameError> {
    // A body with no table is never decoded: kafka-protocol would size
    // its arrays from the wire (the schema test keeps every served API's
    // table present; this is the line behind it).
    if request.checked.is_none()
        && crate::frame::check_body(request.api_key, request.version(), &request.body)?.is_none()
    {
        return Err(FrameError::BadBody {
            api_key: request.api_key,
            version: request.version(),
            source: anyhow::anyhow!("no request table to check the body against"),
        });
    }
    T::decode(&mut request.body.clone(), request.version()).map_err(|source| FrameError::BadBody {
        api_key: request.api_key,
        version: request.version(),
        source,
    })
}
