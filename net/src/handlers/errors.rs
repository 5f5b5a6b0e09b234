//! Kafka error codes the handlers return, and the mapping from our errors.

use replication::metadata::MetadataError;
use replication::quorum::ControllerError;
use replication::quorum::wire::RemoteError;

use engine::ProducerError;
use engine::batch::BatchErrorKind;

use crate::broker::CommandError;
use crate::broker::partition_call::PartitionError;

pub const NONE: i16 = 0;
pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
pub const REQUEST_TIMED_OUT: i16 = 7;
pub const NOT_CONTROLLER: i16 = 41;
pub const FENCED_LEADER_EPOCH: i16 = 74;
pub const UNKNOWN_LEADER_EPOCH: i16 = 76;
pub const STALE_BROKER_EPOCH: i16 = 77;
pub const INVALID_UPDATE_VERSION: i16 = 96;
pub const DUPLICATE_BROKER_REGISTRATION: i16 = 101;
pub const INELIGIBLE_REPLICA: i16 = 107;
pub const UNKNOWN_SERVER_ERROR: i16 = -1;
pub const OFFSET_OUT_OF_RANGE: i16 = 1;
pub const CORRUPT_MESSAGE: i16 = 2;
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub const MESSAGE_TOO_LARGE: i16 = 10;
pub const NOT_ENOUGH_REPLICAS: i16 = 19;
pub const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 = 20;
pub const INVALID_REQUIRED_ACKS: i16 = 21;
pub const INVALID_TIMESTAMP: i16 = 32;
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
pub const INVALID_PRODUCER_EPOCH: i16 = 47;
pub const INVALID_TXN_STATE: i16 = 48;
pub const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
pub const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
pub const CONCURRENT_TRANSACTIONS: i16 = 51;
pub const TRANSACTION_COORDINATOR_FENCED: i16 = 52;
pub const PRODUCER_FENCED: i16 = 90;
pub const UNSUPPORTED_VERSION: i16 = 35;
pub const KAFKA_STORAGE_ERROR: i16 = 56;
pub const INVALID_RECORD: i16 = 87;
pub const UNKNOWN_TOPIC_ID: i16 = 100;
pub const UNSUPPORTED_ENDPOINT_TYPE: i16 = 115;
pub const LEADER_NOT_AVAILABLE: i16 = 5;
pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
pub const INVALID_PARTITIONS: i16 = 37;
pub const INVALID_REPLICATION_FACTOR: i16 = 38;
pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
pub const INVALID_CONFIG: i16 = 40;
pub const INVALID_REQUEST: i16 = 42;
pub const PREFERRED_LEADER_NOT_AVAILABLE: i16 = 80;
pub const ELIGIBLE_LEADERS_NOT_AVAILABLE: i16 = 83;
pub const ELECTION_NOT_NEEDED: i16 = 84;
pub const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;
pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
pub const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
pub const ILLEGAL_SASL_STATE: i16 = 34;
pub const SASL_AUTHENTICATION_FAILED: i16 = 58;
pub const RESOURCE_NOT_FOUND: i16 = 91;
pub const DUPLICATE_RESOURCE: i16 = 92;
pub const UNACCEPTABLE_CREDENTIAL: i16 = 93;
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
pub const NOT_COORDINATOR: i16 = 16;
pub const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
pub const GROUP_AUTHORIZATION_FAILED: i16 = 30;
pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
pub const SECURITY_DISABLED: i16 = 54;
pub const ILLEGAL_GENERATION: i16 = 22;
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
pub const INVALID_GROUP_ID: i16 = 24;
pub const UNKNOWN_MEMBER_ID: i16 = 25;
pub const INVALID_SESSION_TIMEOUT: i16 = 26;
pub const REBALANCE_IN_PROGRESS: i16 = 27;
pub const GROUP_ID_NOT_FOUND: i16 = 69;
pub const NON_EMPTY_GROUP: i16 = 68;
pub const MEMBER_ID_REQUIRED: i16 = 79;
pub const FENCED_INSTANCE_ID: i16 = 82;
pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
pub const UNSTABLE_OFFSET_COMMIT: i16 = 88;
pub const OPERATION_NOT_ATTEMPTED: i16 = 55;
pub const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;
/// KIP-848's consumer group protocol.
pub const FENCED_MEMBER_EPOCH: i16 = 110;
pub const UNRELEASED_INSTANCE_ID: i16 = 111;
pub const UNSUPPORTED_ASSIGNOR: i16 = 112;
pub const STALE_MEMBER_EPOCH: i16 = 113;
pub const INVALID_REGULAR_EXPRESSION: i16 = 130;

/// The Kafka error code of a metadata command failure.
pub fn command_error_code(e: &CommandError) -> i16 {
    match e {
        CommandError::Refused(refused) => match refused {
            MetadataError::TopicExists(_) => TOPIC_ALREADY_EXISTS,
            MetadataError::UnknownTopic(_) => UNKNOWN_TOPIC_OR_PARTITION,
            MetadataError::InvalidTopicName { .. } => INVALID_TOPIC_EXCEPTION,
            MetadataError::InvalidPartitions { .. } => INVALID_PARTITIONS,
            MetadataError::UnknownPartition { .. } => UNKNOWN_TOPIC_OR_PARTITION,
            MetadataError::UnknownScramCredential { .. } => RESOURCE_NOT_FOUND,
            MetadataError::UnacceptableCredential(_) => UNACCEPTABLE_CREDENTIAL,
            MetadataError::InvalidAcl(_) => INVALID_REQUEST,
            // Deleted meanwhile: DeleteAcls counts it as deleted.
            MetadataError::UnknownAcl => NONE,
            // Records of the cluster's own bookkeeping: no client command
            // is refused with these.
            MetadataError::TopicIdInUse
            | MetadataError::ProducerIdsExhausted
            | MetadataError::UnknownBroker { .. } => UNKNOWN_SERVER_ERROR,
        },
        CommandError::Controller(e) => e.code,
        CommandError::Store(_) | CommandError::WriterGone => UNKNOWN_SERVER_ERROR,
    }
}

/// A controller's refusal as the asking broker passes it on.
pub fn controller_error(e: &ControllerError) -> RemoteError {
    let (code, leader) = match e {
        ControllerError::Refused(refused) => (
            command_error_code(&CommandError::Refused(refused.clone())),
            None,
        ),
        ControllerError::NotController { leader } => (NOT_CONTROLLER, *leader),
        ControllerError::InvalidReplicationFactor { .. } => (INVALID_REPLICATION_FACTOR, None),
        ControllerError::StaleBrokerEpoch { .. } => (STALE_BROKER_EPOCH, None),
        ControllerError::DuplicateBrokerRegistration { .. } => {
            (DUPLICATE_BROKER_REGISTRATION, None)
        }
        ControllerError::NotLeader { .. } => (NOT_LEADER_OR_FOLLOWER, None),
        ControllerError::FencedLeaderEpoch { .. } => (FENCED_LEADER_EPOCH, None),
        ControllerError::InvalidUpdateVersion { .. } => (INVALID_UPDATE_VERSION, None),
        ControllerError::IneligibleReplica { .. } => (INELIGIBLE_REPLICA, None),
        ControllerError::InvalidReplicaAssignment { .. } => (INVALID_REPLICA_ASSIGNMENT, None),
        ControllerError::NoReassignmentInProgress => (NO_REASSIGNMENT_IN_PROGRESS, None),
        ControllerError::ReplicationFactorChange { .. } => (INVALID_REPLICATION_FACTOR, None),
    };
    RemoteError {
        code,
        message: e.to_string(),
        leader,
    }
}

/// The Kafka error code of a failed partition operation.
pub fn partition_error_code(e: &PartitionError) -> i16 {
    match e {
        PartitionError::UnknownPartition => UNKNOWN_TOPIC_OR_PARTITION,
        PartitionError::NotLeader => NOT_LEADER_OR_FOLLOWER,
        PartitionError::ShardGone => UNKNOWN_SERVER_ERROR,
        PartitionError::NotEnoughReplicas { .. } => NOT_ENOUGH_REPLICAS,
        PartitionError::NotInTransaction { code } | PartitionError::NotReplicated { code } => *code,
        PartitionError::LeaderEpoch { asked, current } if asked < current => FENCED_LEADER_EPOCH,
        PartitionError::LeaderEpoch { .. } => UNKNOWN_LEADER_EPOCH,
        PartitionError::TopicAuthorization => TOPIC_AUTHORIZATION_FAILED,
        PartitionError::Engine(e) => match e {
            engine::Error::Batch(batch) => match batch.kind() {
                BatchErrorKind::Corrupt => CORRUPT_MESSAGE,
                BatchErrorKind::InvalidRecord => INVALID_RECORD,
                BatchErrorKind::TooLarge => MESSAGE_TOO_LARGE,
                BatchErrorKind::InvalidTimestamp => INVALID_TIMESTAMP,
            },
            engine::Error::Producer(ProducerError::OutOfOrderSequence { .. }) => {
                OUT_OF_ORDER_SEQUENCE_NUMBER
            }
            engine::Error::Producer(ProducerError::InvalidEpoch { .. }) => INVALID_PRODUCER_EPOCH,
            engine::Error::Producer(ProducerError::CoordinatorFenced { .. }) => {
                TRANSACTION_COORDINATOR_FENCED
            }
            engine::Error::OffsetOutOfRange { .. } => OFFSET_OUT_OF_RANGE,
            engine::Error::Corrupt { .. } | engine::Error::Io(_) | engine::Error::Poisoned(_) => {
                KAFKA_STORAGE_ERROR
            }
            engine::Error::Closed | engine::Error::UnknownPartition(_) => {
                UNKNOWN_TOPIC_OR_PARTITION
            }
            engine::Error::PartitionExists(_)
            | engine::Error::InvalidPartitionName(_)
            | engine::Error::ReplicaGap { .. } => UNKNOWN_SERVER_ERROR,
        },
    }
}
