//! The frames voters and brokers exchange on the internal listener, sans-IO.
//!
//! A frame: u32 big-endian length of what follows, a kind byte, the body.
//! Raft messages are raft-rs's protobuf; everything else is an rkyv
//! archive, validated when decoded. A decoding error means the peer is
//! broken or hostile: the connection is closed.

use protobuf::Message as _;
use raft::prelude::Message;
use rkyv::rancor;

use super::controller::ControllerRequest;
use super::node::Committed;

/// The largest frame accepted (a CreateTopics of many partitions is one
/// entry; Raft's own appends are capped at 1 MiB per message).
pub const FRAME_BYTES_MAX: usize = 64 << 20;

/// Bytes of the length prefix.
pub const PREFIX_BYTES: usize = 4;

/// The answer of a request that failed, as the asking broker passes it on:
/// a Kafka error code and a message.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct RemoteError {
    pub code: i16,
    pub message: String,
    /// For NOT_CONTROLLER: the voter the answering one believes leads.
    pub leader: Option<u64>,
}

/// One frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// First frame on a connection: who connects, to which cluster.
    Hello {
        node_id: u64,
        cluster_id: String,
    },
    /// First frame on a data connection of the ISR protocol: who connects,
    /// to which cluster, and which of the receiver's shards it is for;
    /// `isr::wire` frames follow.
    DataHello {
        node_id: u64,
        cluster_id: String,
        shard: u32,
    },
    Raft(Message),
    /// A request to the controller, answered by a [`Frame::Reply`] with
    /// the same id on the asking node's own connection.
    Request {
        id: u64,
        from: u64,
        request: ControllerRequest,
    },
    Reply {
        id: u64,
        result: Result<Committed, RemoteError>,
    },
}

const HELLO: u8 = 1;
const RAFT: u8 = 2;
const REQUEST: u8 = 3;
const REPLY: u8 = 4;
const DATA_HELLO: u8 = 5;

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct DataHelloBody {
    node_id: u64,
    cluster_id: String,
    shard: u32,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct HelloBody {
    node_id: u64,
    cluster_id: String,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct RequestBody {
    id: u64,
    from: u64,
    request: ControllerRequest,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct ReplyBody {
    id: u64,
    /// (index, term) when accepted.
    committed: Option<(u64, u64)>,
    /// The producer ids reserved: (first, count).
    producer_ids: Option<(i64, i64)>,
    error: Option<RemoteError>,
}

/// Why bytes are not a frame.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("frame of {0} bytes exceeds the limit")]
    TooLarge(usize),
    #[error("empty frame")]
    Empty,
    #[error("unknown frame kind {0}")]
    Kind(u8),
    #[error("invalid raft message: {0}")]
    Raft(#[from] protobuf::ProtobufError),
    #[error("invalid frame body: {0}")]
    Body(#[from] rancor::Error),
    #[error("a reply with neither a result nor an error")]
    Reply,
}

/// The frame's bytes, length prefix included.
pub fn encode(frame: &Frame) -> Vec<u8> {
    let (kind, body) = match frame {
        Frame::Hello {
            node_id,
            cluster_id,
        } => (
            HELLO,
            crate::archive::to_bytes(&HelloBody {
                node_id: *node_id,
                cluster_id: cluster_id.clone(),
            }),
        ),
        Frame::DataHello {
            node_id,
            cluster_id,
            shard,
        } => (
            DATA_HELLO,
            crate::archive::to_bytes(&DataHelloBody {
                node_id: *node_id,
                cluster_id: cluster_id.clone(),
                shard: *shard,
            }),
        ),
        // Writing protobuf into a vector fails only past 2 GiB.
        Frame::Raft(message) => (RAFT, message.write_to_bytes().unwrap_or_default()),
        Frame::Request { id, from, request } => (
            REQUEST,
            crate::archive::to_bytes(&RequestBody {
                id: *id,
                from: *from,
                request: request.clone(),
            }),
        ),
        Frame::Reply { id, result } => {
            let (committed, error) = match result {
                Ok(c) => (Some((c.index, c.term)), None),
                Err(e) => (None, Some(e.clone())),
            };
            let body = ReplyBody {
                id: *id,
                committed,
                producer_ids: result.as_ref().ok().and_then(|c| c.producer_ids),
                error,
            };
            (REPLY, crate::archive::to_bytes(&body))
        }
    };
    let len = u32::try_from(body.len() + 1).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(PREFIX_BYTES + 1 + body.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.push(kind);
    out.extend_from_slice(&body);
    out
}

/// The length a prefix announces, checked against the limit.
pub fn frame_len(prefix: [u8; PREFIX_BYTES]) -> Result<usize, WireError> {
    let len = usize::try_from(u32::from_be_bytes(prefix)).unwrap_or(usize::MAX);
    match len {
        0 => Err(WireError::Empty),
        len if len > FRAME_BYTES_MAX => Err(WireError::TooLarge(len)),
        len => Ok(len),
    }
}

/// Decodes a frame's bytes after the prefix.
pub fn decode(frame: &[u8]) -> Result<Frame, WireError> {
    let (&kind, body) = frame.split_first().ok_or(WireError::Empty)?;
    let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(body.len());
    match kind {
        RAFT => Ok(Frame::Raft(Message::parse_from_bytes(body)?)),
        HELLO => {
            aligned.extend_from_slice(body);
            let hello = rkyv::from_bytes::<HelloBody, rancor::Error>(&aligned)?;
            Ok(Frame::Hello {
                node_id: hello.node_id,
                cluster_id: hello.cluster_id,
            })
        }
        DATA_HELLO => {
            aligned.extend_from_slice(body);
            let hello = rkyv::from_bytes::<DataHelloBody, rancor::Error>(&aligned)?;
            Ok(Frame::DataHello {
                node_id: hello.node_id,
                cluster_id: hello.cluster_id,
                shard: hello.shard,
            })
        }
        REQUEST => {
            aligned.extend_from_slice(body);
            let request = rkyv::from_bytes::<RequestBody, rancor::Error>(&aligned)?;
            Ok(Frame::Request {
                id: request.id,
                from: request.from,
                request: request.request,
            })
        }
        REPLY => {
            aligned.extend_from_slice(body);
            let reply = rkyv::from_bytes::<ReplyBody, rancor::Error>(&aligned)?;
            let result = match (reply.committed, reply.error) {
                (Some((index, term)), None) => Ok(Committed {
                    index,
                    term,
                    producer_ids: reply.producer_ids,
                }),
                (None, Some(error)) => Err(error),
                _ => return Err(WireError::Reply),
            };
            Ok(Frame::Reply {
                id: reply.id,
                result,
            })
        }
        other => Err(WireError::Kind(other)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::metadata::{Command, Endpoint, TopicId};

    fn round_trip(frame: Frame) {
        let bytes = encode(&frame);
        let prefix: [u8; 4] = bytes[..4].try_into().unwrap();
        assert_eq!(frame_len(prefix).unwrap(), bytes.len() - 4);
        assert_eq!(decode(&bytes[4..]).unwrap(), frame);
    }

    #[test]
    fn every_kind_of_frame_round_trips() {
        round_trip(Frame::Hello {
            node_id: 3,
            cluster_id: "c".into(),
        });
        round_trip(Frame::DataHello {
            node_id: 3,
            cluster_id: "c".into(),
            shard: 1,
        });
        let message = Message {
            from: 1,
            to: 2,
            term: 7,
            commit: 5,
            ..Message::default()
        };
        round_trip(Frame::Raft(message));
        round_trip(Frame::Request {
            id: 9,
            from: 2,
            request: ControllerRequest::Admin {
                command: Command::CreateTopic {
                    name: "t".into(),
                    partitions: 3,
                    replication_factor: 3,
                    configs: BTreeMap::from([("retention.ms".into(), "1".into())]),
                },
                topic_id: TopicId([4; 16]),
            },
        });
        round_trip(Frame::Request {
            id: 11,
            from: 1,
            request: ControllerRequest::AdminAssigned {
                command: Command::CreatePartitions {
                    name: "t".into(),
                    total: 5,
                },
                topic_id: TopicId([5; 16]),
                assignments: vec![vec![2, 0], vec![0, 1]],
            },
        });
        round_trip(Frame::Request {
            id: 12,
            from: 0,
            request: ControllerRequest::ElectLeaders {
                unclean: true,
                partitions: vec![(TopicId([6; 16]), 3)],
            },
        });
        round_trip(Frame::Request {
            id: 10,
            from: 2,
            request: ControllerRequest::RegisterBroker {
                broker_id: 2,
                incarnation: 99,
                endpoints: vec![Endpoint {
                    name: "PLAINTEXT".into(),
                    host: "127.0.0.1".into(),
                    port: 9092,
                }],
            },
        });
        round_trip(Frame::Reply {
            id: 9,
            result: Ok(Committed {
                index: 4,
                term: 2,
                producer_ids: Some((1000, 1000)),
            }),
        });
        round_trip(Frame::Reply {
            id: 9,
            result: Err(RemoteError {
                code: 41,
                message: "not the controller".into(),
                leader: Some(1),
            }),
        });
    }

    #[test]
    fn oversized_and_empty_prefixes_are_refused() {
        assert!(matches!(frame_len([0; 4]), Err(WireError::Empty)));
        assert!(matches!(frame_len([0xff; 4]), Err(WireError::TooLarge(_))));
    }

    #[test]
    fn a_raft_field_longer_than_its_frame_is_an_error() {
        // entries (7), snapshot (9), context (12): length-delimited fields
        // announcing 2 GiB in a 10-byte frame.
        for field in [7u8, 9, 12] {
            let frame = [
                RAFT,
                (field << 3) | 2,
                0xff,
                0xff,
                0xff,
                0xff,
                0x07,
                1,
                2,
                3,
            ];
            assert!(decode(&frame).is_err(), "field {field}");
        }
    }

    proptest! {
        /// Random bodies of every kind are errors or frames, never panics.
        #[test]
        fn random_bytes_never_panic_the_decoder(
            kind in 0u8..6,
            body in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let mut frame = vec![kind];
            frame.extend_from_slice(&body);
            let _ = decode(&frame);
        }
    }
}
