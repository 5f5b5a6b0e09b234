//! The frames of the ISR protocol between brokers, sans-IO.
//!
//! They travel on data connections of the internal listener: one per
//! (shard, peer), opened with a quorum `DataHello` naming the shard, then
//! only these frames, each `u32` big-endian length, a kind byte, the body.
//! A push carries its records raw after a small rkyv header (the records
//! are record batches, CRC-checked by the follower's append), so they are
//! not copied into an archive; everything else is one rkyv archive,
//! validated when decoded.

use bytes::Bytes;
use rkyv::rancor;

use crate::quorum::wire::{FRAME_BYTES_MAX, PREFIX_BYTES};

/// The records one push carries at most (the leader sends a larger range
/// in several pushes).
pub const PUSH_RECORDS_MAX: usize = 1 << 20;

/// One partition, as frames name it.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct PartitionKey {
    pub topic: String,
    pub partition: i32,
}

/// One frame of the ISR protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataFrame {
    /// Leader to follower: the batches from `from` to `end` (none when
    /// equal: only the high watermark).
    Push {
        key: PartitionKey,
        leader_epoch: i32,
        from: i64,
        end: i64,
        high_watermark: i64,
        records: Bytes,
    },
    /// Follower to leader: where its log ends and what of it is durable.
    Ack {
        key: PartitionKey,
        leader_epoch: i32,
        session: u64,
        log_end: i64,
        durable: i64,
    },
    /// Follower to leader: where did `epoch` end in your log
    /// (OffsetForLeaderEpoch between brokers)?
    AskEpochEnd {
        key: PartitionKey,
        leader_epoch: i32,
        epoch: i32,
    },
    /// Leader to follower: the largest epoch at or below the asked one and
    /// where it ended (-1, -1: none).
    EpochEnd {
        key: PartitionKey,
        leader_epoch: i32,
        epoch: i32,
        end: i64,
    },
    /// Leader to follower: your log ends below my log start (retention,
    /// DeleteRecords): empty it and start again at `offset`, where the
    /// batch holding my log start begins.
    StartAt {
        key: PartitionKey,
        leader_epoch: i32,
        offset: i64,
    },
    /// Leader to follower: my log starts at `offset` now (DeleteRecords,
    /// retention): what is below it goes from your log too.
    LogStart {
        key: PartitionKey,
        leader_epoch: i32,
        offset: i64,
    },
}

impl DataFrame {
    pub fn key(&self) -> &PartitionKey {
        match self {
            DataFrame::Push { key, .. }
            | DataFrame::Ack { key, .. }
            | DataFrame::AskEpochEnd { key, .. }
            | DataFrame::EpochEnd { key, .. }
            | DataFrame::StartAt { key, .. }
            | DataFrame::LogStart { key, .. } => key,
        }
    }
}

const PUSH: u8 = 1;
const ACK: u8 = 2;
const ASK_EPOCH_END: u8 = 3;
const EPOCH_END: u8 = 4;
const START_AT: u8 = 5;
const LOG_START: u8 = 6;

/// A partition's offset at a leader epoch (StartAt, LogStart).
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct OffsetBody {
    key: PartitionKey,
    leader_epoch: i32,
    offset: i64,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct PushHeader {
    key: PartitionKey,
    leader_epoch: i32,
    from: i64,
    end: i64,
    high_watermark: i64,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct AckBody {
    key: PartitionKey,
    leader_epoch: i32,
    session: u64,
    log_end: i64,
    durable: i64,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct EpochBody {
    key: PartitionKey,
    leader_epoch: i32,
    epoch: i32,
    /// Absent in a question.
    end: Option<i64>,
}

/// Why bytes are not a data frame.
#[derive(Debug, thiserror::Error)]
pub enum DataWireError {
    #[error("empty frame")]
    Empty,
    #[error("unknown data frame kind {0}")]
    Kind(u8),
    #[error("push header of {0} bytes runs past the frame")]
    Header(usize),
    #[error("invalid frame body: {0}")]
    Body(#[from] rancor::Error),
    #[error("an epoch question or answer of the wrong kind")]
    Epoch,
}

/// A push's frame: the length prefix, the kind, the header and, written
/// after them in order, the `records` slices (whose total is
/// `records_len`). Returned as the frame's head; the caller writes the
/// record slices after it.
pub fn encode_push_head(
    key: &PartitionKey,
    leader_epoch: i32,
    from: i64,
    end: i64,
    high_watermark: i64,
    records_len: usize,
) -> Vec<u8> {
    let header = crate::archive::to_bytes(&PushHeader {
        key: key.clone(),
        leader_epoch,
        from,
        end,
        high_watermark,
    });
    let header_len = u32::try_from(header.len()).unwrap_or(u32::MAX);
    let len = 1 + 4 + header.len() + records_len;
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(PREFIX_BYTES + 5 + header.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.push(PUSH);
    out.extend_from_slice(&header_len.to_be_bytes());
    out.extend_from_slice(&header);
    out
}

/// Any frame but a push's records, whole.
pub fn encode(frame: &DataFrame) -> Vec<u8> {
    let (kind, body) = match frame.clone() {
        DataFrame::Push {
            key,
            leader_epoch,
            from,
            end,
            high_watermark,
            records,
        } => {
            let mut out =
                encode_push_head(&key, leader_epoch, from, end, high_watermark, records.len());
            out.extend_from_slice(&records);
            return out;
        }
        DataFrame::Ack {
            key,
            leader_epoch,
            session,
            log_end,
            durable,
        } => {
            let body = AckBody {
                key,
                leader_epoch,
                session,
                log_end,
                durable,
            };
            (ACK, crate::archive::to_bytes(&body))
        }
        DataFrame::AskEpochEnd {
            key,
            leader_epoch,
            epoch,
        } => {
            let body = EpochBody {
                key,
                leader_epoch,
                epoch,
                end: None,
            };
            (ASK_EPOCH_END, crate::archive::to_bytes(&body))
        }
        DataFrame::EpochEnd {
            key,
            leader_epoch,
            epoch,
            end,
        } => {
            let body = EpochBody {
                key,
                leader_epoch,
                epoch,
                end: Some(end),
            };
            (EPOCH_END, crate::archive::to_bytes(&body))
        }
        DataFrame::StartAt {
            key,
            leader_epoch,
            offset,
        }
        | DataFrame::LogStart {
            key,
            leader_epoch,
            offset,
        } => {
            let kind = if matches!(frame, DataFrame::StartAt { .. }) {
                START_AT
            } else {
                LOG_START
            };
            let body = OffsetBody {
                key,
                leader_epoch,
                offset,
            };
            (kind, crate::archive::to_bytes(&body))
        }
    };
    let len = u32::try_from(body.len() + 1).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(PREFIX_BYTES + 1 + body.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.push(kind);
    out.extend_from_slice(&body);
    out
}

/// The largest data frame accepted.
pub const DATA_FRAME_BYTES_MAX: usize = FRAME_BYTES_MAX;

fn archived<T>(body: &[u8]) -> Result<T, DataWireError>
where
    T: rkyv::Archive,
    T::Archived: for<'a> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'a, rancor::Error>>
        + rkyv::Deserialize<T, rkyv::api::high::HighDeserializer<rancor::Error>>,
{
    let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(body.len());
    aligned.extend_from_slice(body);
    Ok(rkyv::from_bytes::<T, rancor::Error>(&aligned)?)
}

/// Decodes a frame's bytes after the prefix; a push's records are a slice
/// of `frame`, not copied.
pub fn decode(frame: Bytes) -> Result<DataFrame, DataWireError> {
    let (&kind, body) = frame.split_first().ok_or(DataWireError::Empty)?;
    match kind {
        PUSH => {
            let header_len = body
                .first_chunk::<4>()
                .map(|b| u32::from_be_bytes(*b) as usize)
                .ok_or(DataWireError::Header(0))?;
            let header = body
                .get(4..4 + header_len)
                .ok_or(DataWireError::Header(header_len))?;
            let h: PushHeader = archived(header)?;
            Ok(DataFrame::Push {
                key: h.key,
                leader_epoch: h.leader_epoch,
                from: h.from,
                end: h.end,
                high_watermark: h.high_watermark,
                records: frame.slice(1 + 4 + header_len..),
            })
        }
        ACK => {
            let a: AckBody = archived(body)?;
            Ok(DataFrame::Ack {
                key: a.key,
                leader_epoch: a.leader_epoch,
                session: a.session,
                log_end: a.log_end,
                durable: a.durable,
            })
        }
        ASK_EPOCH_END | EPOCH_END => {
            let e: EpochBody = archived(body)?;
            match (kind, e.end) {
                (ASK_EPOCH_END, None) => Ok(DataFrame::AskEpochEnd {
                    key: e.key,
                    leader_epoch: e.leader_epoch,
                    epoch: e.epoch,
                }),
                (EPOCH_END, Some(end)) => Ok(DataFrame::EpochEnd {
                    key: e.key,
                    leader_epoch: e.leader_epoch,
                    epoch: e.epoch,
                    end,
                }),
                _ => Err(DataWireError::Epoch),
            }
        }
        START_AT | LOG_START => {
            let OffsetBody {
                key,
                leader_epoch,
                offset,
            } = archived(body)?;
            Ok(if kind == START_AT {
                DataFrame::StartAt {
                    key,
                    leader_epoch,
                    offset,
                }
            } else {
                DataFrame::LogStart {
                    key,
                    leader_epoch,
                    offset,
                }
            })
        }
        other => Err(DataWireError::Kind(other)),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn round_trip(frame: DataFrame) {
        let bytes = encode(&frame);
        let len = u32::from_be_bytes(*bytes.first_chunk().unwrap()) as usize;
        assert_eq!(len, bytes.len() - PREFIX_BYTES);
        let decoded = decode(Bytes::copy_from_slice(&bytes[PREFIX_BYTES..])).unwrap();
        assert_eq!(decoded, frame);
    }

    fn key() -> PartitionKey {
        PartitionKey {
            topic: "orders".into(),
            partition: 7,
        }
    }

    #[test]
    fn every_frame_round_trips() {
        round_trip(DataFrame::StartAt {
            key: key(),
            leader_epoch: 4,
            offset: 1_000,
        });
        round_trip(DataFrame::LogStart {
            key: key(),
            leader_epoch: 4,
            offset: 2_000,
        });
        round_trip(DataFrame::Push {
            key: key(),
            leader_epoch: 3,
            from: 10,
            end: 12,
            high_watermark: 9,
            records: Bytes::from_static(b"batches"),
        });
        round_trip(DataFrame::Push {
            key: key(),
            leader_epoch: 3,
            from: 12,
            end: 12,
            high_watermark: 12,
            records: Bytes::new(),
        });
        round_trip(DataFrame::Ack {
            key: key(),
            leader_epoch: 3,
            session: u64::MAX,
            log_end: 12,
            durable: 11,
        });
        round_trip(DataFrame::AskEpochEnd {
            key: key(),
            leader_epoch: 4,
            epoch: 2,
        });
        round_trip(DataFrame::EpochEnd {
            key: key(),
            leader_epoch: 4,
            epoch: -1,
            end: -1,
        });
    }

    proptest! {
        /// Arbitrary bytes decode to a frame or an error, never a panic.
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(Bytes::from(bytes));
        }
    }
}
