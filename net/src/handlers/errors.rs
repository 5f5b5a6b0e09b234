//! Kafka error codes the handlers return, and the mapping from our errors.

use replication::metadata::MetadataError;

use crate::broker::CommandError;

pub const NONE: i16 = 0;
pub const UNKNOWN_SERVER_ERROR: i16 = -1;
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub const LEADER_NOT_AVAILABLE: i16 = 5;
pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
pub const INVALID_PARTITIONS: i16 = 37;
pub const INVALID_REPLICATION_FACTOR: i16 = 38;
pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
pub const INVALID_CONFIG: i16 = 40;
pub const INVALID_REQUEST: i16 = 42;

/// The Kafka error code of a metadata command failure.
pub fn command_error_code(e: &CommandError) -> i16 {
    match e {
        CommandError::Refused(refused) => match refused {
            MetadataError::TopicExists(_) => TOPIC_ALREADY_EXISTS,
            MetadataError::UnknownTopic(_) => UNKNOWN_TOPIC_OR_PARTITION,
            MetadataError::InvalidTopicName { .. } => INVALID_TOPIC_EXCEPTION,
            MetadataError::InvalidPartitions { .. } => INVALID_PARTITIONS,
            MetadataError::TopicIdInUse => UNKNOWN_SERVER_ERROR,
        },
        CommandError::Store(_) | CommandError::WriterGone => UNKNOWN_SERVER_ERROR,
    }
}
