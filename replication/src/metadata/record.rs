//! Metadata records: what the metadata log holds, one per change.
//!
//! Encoding: one version byte (1), then the rkyv archive of the record.
//! Decoding copies the archive into aligned memory and validates it
//! (bytecheck) before use, so damaged or foreign bytes are an error.

use std::collections::BTreeMap;
use std::fmt;

use rkyv::rancor;

/// Kafka's 16-byte topic id (a UUID).
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
pub struct TopicId(pub [u8; 16]);

impl TopicId {
    /// Kafka's "no topic id" (all zero); never given to a topic.
    pub const ZERO: TopicId = TopicId([0; 16]);
}

impl fmt::Debug for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// One change to the cluster metadata.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum MetadataRecord {
    TopicCreated {
        name: String,
        topic_id: TopicId,
        partitions: i32,
        configs: BTreeMap<String, String>,
    },
    TopicDeleted {
        name: String,
        topic_id: TopicId,
    },
    PartitionsCreated {
        name: String,
        total: i32,
    },
    /// `topic: None` alters the broker defaults.
    ConfigsAltered {
        topic: Option<String>,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    },
    /// Producer ids `[first, first + count)` handed to a shard: never
    /// handed out again, whatever restarts follow.
    ProducerIdsAllocated {
        first: i64,
        count: i64,
    },
}

const VERSION: u8 = 1;

/// Bytes that are not a metadata record of a version we read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("empty metadata record")]
    Empty,
    #[error("metadata record version {0} is not supported")]
    Version(u8),
    #[error("invalid metadata record: {0}")]
    Invalid(#[source] rancor::Error),
}

impl MetadataRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![VERSION];
        match rkyv::to_bytes::<rancor::Error>(self) {
            Ok(archive) => out.extend_from_slice(&archive),
            // Serializing plain owned data into memory cannot fail short of
            // allocation failure, which aborts anyway.
            Err(e) => unreachable!("serializing a metadata record failed: {e}"),
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<MetadataRecord, DecodeError> {
        let (&version, archive) = bytes.split_first().ok_or(DecodeError::Empty)?;
        if version != VERSION {
            return Err(DecodeError::Version(version));
        }
        let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(archive.len());
        aligned.extend_from_slice(archive);
        rkyv::from_bytes::<MetadataRecord, rancor::Error>(&aligned).map_err(DecodeError::Invalid)
    }
}
