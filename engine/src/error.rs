use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::Offset;
use crate::batch::BatchError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An I/O operation that failed, with the file it was on.
#[derive(Debug, thiserror::Error)]
#[error("{op} {path}: {source}")]
pub struct IoError {
    pub op: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl IoError {
    pub(crate) fn new(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        IoError {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Everything the engine can fail with. The protocol layer maps each to a
/// Kafka error code at the handler boundary.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bytes offered for append are not acceptable record batches.
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// An idempotent producer's batch out of sequence or from an old epoch.
    #[error(transparent)]
    Producer(#[from] crate::log::ProducerError),
    /// Stored bytes failed validation when read back: never served.
    #[error("corrupt data in {path} at byte {position}: {cause}")]
    Corrupt {
        path: PathBuf,
        position: u64,
        cause: BatchError,
    },
    #[error(transparent)]
    Io(#[from] IoError),
    /// A write or fdatasync failed earlier; the partition takes no appends
    /// until it is reopened (its durable state is then recovered from disk).
    #[error("partition poisoned by an earlier failure: {0}")]
    Poisoned(Arc<IoError>),
    #[error("offset {offset} is outside the log [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: Offset,
        log_start_offset: Offset,
        log_end_offset: Offset,
    },
    #[error("the partition is closed")]
    Closed,
    #[error("partition {0} already exists")]
    PartitionExists(String),
    #[error("partition {0} is not on this shard")]
    UnknownPartition(String),
    #[error("invalid partition directory name {0:?}")]
    InvalidPartitionName(String),
    /// A follower's append that does not start at its log end (or skips
    /// offsets): the leader sends again from where the log ends.
    #[error("replicated batches start at {got}, the log ends at {expected}")]
    ReplicaGap { expected: Offset, got: Offset },
}
