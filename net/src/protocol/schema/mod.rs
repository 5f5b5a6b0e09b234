//! The wire layout of the requests the broker decodes, and the bounded
//! pre-decode pass that makes decoding them safe.
//!
//! Why it exists: `kafka-protocol` (0.18) decodes an array by reading its
//! count from the wire and calling `Vec::with_capacity(count)` before it
//! decodes a single element. A 20-byte DeleteRecords request whose count is
//! 0x7fffffff asks for about 100 GB; the allocation fails and, with
//! `panic = "abort"`, the process dies with every shard. Everything else
//! its request decoders allocate is bounded by the bytes they consume
//! (strings and byte fields are slices of the frame; each unknown tagged
//! field consumes at least two bytes).
//!
//! So every request body is first walked by [`check`] along the table of
//! its API ([`request`]), before `kafka-protocol` sees it: every count and
//! length read from the wire is checked against the bytes that remain (an
//! array of n elements needs n times its element's smallest encoding), and
//! the heap the decoder will allocate is summed (n times the element's
//! in-memory size, per array, plus the unknown tagged fields' maps). A body
//! passes only within [`crate::limits::DECODED_BYTES_MAX_PER_REQUEST`]; the
//! connection accounts what passed against its shard's decode budget. The
//! walk allocates nothing, reads each byte once and recurses only as deep
//! as the table (never as deep as the wire says).
//!
//! The tables follow the Kafka protocol's message definitions (field order,
//! version ranges, nullability, tags, flexible versions). Tests generate
//! bodies from them ([`generate`]) and check that `kafka-protocol` decodes
//! every one, consuming exactly its bytes, within the heap [`check`]
//! predicted (allocations counted: `net/tests/decode_bounds.rs`). Why a
//! pre-decode pass and not a decoder of our own: docs/protocol-decoding.md.

mod admin;
pub mod generate;
mod groups;
mod produce_fetch;
mod transactions;
mod walk;

pub use walk::{Checked, Reason, SchemaError, check};

use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable};

/// An inclusive range of versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    pub min: i16,
    pub max: i16,
}

impl Versions {
    pub const fn contains(self, version: i16) -> bool {
        self.min <= version && version <= self.max
    }
}

/// The wire type of a field.
#[derive(Debug)]
pub enum Kind {
    Bool,
    Int8,
    Int16,
    Uint16,
    Int32,
    Int64,
    Float64,
    Uuid,
    /// A string: i16 length (compact: unsigned varint length + 1).
    Str,
    /// Bytes: i32 length (compact: unsigned varint length + 1).
    Bytes,
    /// Record batches, encoded as [`Kind::Bytes`].
    Records,
    /// A struct embedded in its parent.
    Struct(&'static [Field]),
    /// An array: i32 count (compact: unsigned varint count + 1).
    Array(&'static Array),
}

/// An array's element and what one element takes in memory once decoded
/// (`size_of` of `kafka-protocol`'s type: what `Vec::with_capacity` takes).
#[derive(Debug)]
pub struct Array {
    pub element: Kind,
    pub element_bytes: usize,
}

/// One field of a struct, present in `versions`.
#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    pub versions: Versions,
    pub kind: Kind,
    /// Null (length or count -1) is accepted.
    pub nullable: bool,
    /// A tagged field (flexible versions only): its tag.
    pub tag: Option<u32>,
}

/// A request (or an embedded protocol such as the consumer protocol's
/// subscription) at the versions `kafka-protocol` decodes.
#[derive(Debug)]
pub struct Message {
    pub name: &'static str,
    /// The API this is the request of; `None` for embedded protocols.
    pub api_key: Option<ApiKey>,
    pub versions: Versions,
    /// The first flexible version (compact lengths, tagged fields).
    pub flexible_from: Option<i16>,
    pub fields: &'static [Field],
    /// Decodes a body with `kafka-protocol`'s type for this message (tests
    /// and fuzzers: the broker's handlers decode their own types).
    pub decode: DecodeFn,
    /// Decodes, encodes and decodes again; `Err` unless both decodes agree.
    pub round_trip: DecodeFn,
}

/// Decodes from the front of the buffer, leaving what follows the body.
pub type DecodeFn = fn(&mut bytes::Bytes, i16) -> anyhow::Result<()>;

fn decode_as<T: Decodable>(buf: &mut bytes::Bytes, version: i16) -> anyhow::Result<()> {
    T::decode(buf, version).map(drop)
}

fn round_trip_as<T: Decodable + Encodable + PartialEq>(
    buf: &mut bytes::Bytes,
    version: i16,
) -> anyhow::Result<()> {
    let decoded = T::decode(buf, version)?;
    let mut encoded = bytes::BytesMut::new();
    decoded.encode(&mut encoded, version)?;
    let again = T::decode(&mut encoded.freeze(), version)?;
    anyhow::ensure!(again == decoded, "decoded again, the message differs");
    Ok(())
}

impl Message {
    pub fn is_flexible(&self, version: i16) -> bool {
        self.flexible_from.is_some_and(|first| version >= first)
    }
}

/// `field!(name, 0.., Int32)`, `field!(name, 3..=8, Str, nullable)`,
/// `field!(name, 12.., Str, nullable, tag 0)`.
macro_rules! field {
    ($name:ident, $min:literal ..= $max:literal, $($rest:tt)*) => {
        field!(@ $name, $min, $max, $($rest)*)
    };
    ($name:ident, $min:literal .., $($rest:tt)*) => {
        field!(@ $name, $min, i16::MAX, $($rest)*)
    };
    (@ $name:ident, $min:expr, $max:expr, $kind:expr) => {
        field!(@@ $name, $min, $max, $kind, false, None)
    };
    (@ $name:ident, $min:expr, $max:expr, $kind:expr, nullable) => {
        field!(@@ $name, $min, $max, $kind, true, None)
    };
    (@ $name:ident, $min:expr, $max:expr, $kind:expr, tag $tag:literal) => {
        field!(@@ $name, $min, $max, $kind, false, Some($tag))
    };
    (@ $name:ident, $min:expr, $max:expr, $kind:expr, nullable, tag $tag:literal) => {
        field!(@@ $name, $min, $max, $kind, true, Some($tag))
    };
    (@@ $name:ident, $min:expr, $max:expr, $kind:expr, $nullable:expr, $tag:expr) => {
        $crate::protocol::schema::Field {
            name: stringify!($name),
            versions: $crate::protocol::schema::Versions { min: $min, max: $max },
            kind: $kind,
            nullable: $nullable,
            tag: $tag,
        }
    };
}

/// `array!(RustType, [fields...])` for arrays of structs,
/// `array!(i32, Int32)` for arrays of a primitive.
macro_rules! array {
    ($t:ty, [$($field:expr),* $(,)?]) => {
        $crate::protocol::schema::Kind::Array(&$crate::protocol::schema::Array {
            element: $crate::protocol::schema::Kind::Struct(&[$($field),*]),
            element_bytes: ::core::mem::size_of::<$t>(),
        })
    };
    ($t:ty, $element:ident) => {
        $crate::protocol::schema::Kind::Array(&$crate::protocol::schema::Array {
            element: $crate::protocol::schema::Kind::$element,
            element_bytes: ::core::mem::size_of::<$t>(),
        })
    };
}

/// `object!([fields...])`: a struct embedded in its parent.
macro_rules! object {
    ([$($field:expr),* $(,)?]) => {
        $crate::protocol::schema::Kind::Struct(&[$($field),*])
    };
}

/// `message!(Name, ApiKey or None, 0..=9, flexible 6, [fields...])`.
macro_rules! message {
    ($name:ident, $api:expr, $min:literal ..= $max:literal, flexible $flex:literal, [$($field:expr),* $(,)?]) => {
        message!(@ $name, $api, $min, $max, Some($flex), [$($field),*])
    };
    ($name:ident, $api:expr, $min:literal ..= $max:literal, never flexible, [$($field:expr),* $(,)?]) => {
        message!(@ $name, $api, $min, $max, None, [$($field),*])
    };
    (@ $name:ident, $api:expr, $min:expr, $max:expr, $flex:expr, [$($field:expr),*]) => {
        $crate::protocol::schema::Message {
            name: stringify!($name),
            api_key: $api,
            versions: $crate::protocol::schema::Versions { min: $min, max: $max },
            flexible_from: $flex,
            fields: &[$($field),*],
            decode: $crate::protocol::schema::decode_as::<::kafka_protocol::messages::$name>,
            round_trip: $crate::protocol::schema::round_trip_as::<::kafka_protocol::messages::$name>,
        }
    };
}

pub(crate) use {array, field, message, object};

/// Every request the broker decodes, one per API.
pub const REQUESTS: &[&Message] = &[
    &produce_fetch::PRODUCE,
    &produce_fetch::FETCH,
    &produce_fetch::LIST_OFFSETS,
    &produce_fetch::OFFSET_FOR_LEADER_EPOCH,
    &produce_fetch::METADATA,
    &produce_fetch::API_VERSIONS,
    &admin::CREATE_TOPICS,
    &admin::DELETE_TOPICS,
    &admin::CREATE_PARTITIONS,
    &admin::DESCRIBE_CONFIGS,
    &admin::ALTER_CONFIGS,
    &admin::INCREMENTAL_ALTER_CONFIGS,
    &admin::DELETE_RECORDS,
    &admin::DESCRIBE_CLUSTER,
    &admin::DESCRIBE_LOG_DIRS,
    &admin::ELECT_LEADERS,
    &admin::ALTER_PARTITION_REASSIGNMENTS,
    &admin::LIST_PARTITION_REASSIGNMENTS,
    &admin::SASL_HANDSHAKE,
    &admin::SASL_AUTHENTICATE,
    &admin::DESCRIBE_USER_SCRAM_CREDENTIALS,
    &admin::ALTER_USER_SCRAM_CREDENTIALS,
    &admin::DESCRIBE_ACLS,
    &admin::CREATE_ACLS,
    &admin::DELETE_ACLS,
    &groups::FIND_COORDINATOR,
    &groups::JOIN_GROUP,
    &groups::SYNC_GROUP,
    &groups::HEARTBEAT,
    &groups::LEAVE_GROUP,
    &groups::OFFSET_COMMIT,
    &groups::OFFSET_FETCH,
    &groups::LIST_GROUPS,
    &groups::DESCRIBE_GROUPS,
    &groups::DELETE_GROUPS,
    &groups::OFFSET_DELETE,
    &groups::CONSUMER_GROUP_HEARTBEAT,
    &groups::CONSUMER_GROUP_DESCRIBE,
    &groups::INIT_PRODUCER_ID,
    &transactions::ADD_PARTITIONS_TO_TXN,
    &transactions::ADD_OFFSETS_TO_TXN,
    &transactions::END_TXN,
    &transactions::WRITE_TXN_MARKERS,
    &transactions::TXN_OFFSET_COMMIT,
    &transactions::DESCRIBE_PRODUCERS,
    &transactions::DESCRIBE_TRANSACTIONS,
    &transactions::LIST_TRANSACTIONS,
];

/// The consumer protocol's subscription (a JoinGroup member's metadata),
/// which the group coordinator decodes.
pub const CONSUMER_PROTOCOL_SUBSCRIPTION: &Message = &groups::CONSUMER_PROTOCOL_SUBSCRIPTION;
/// The consumer protocol's assignment (a SyncGroup leader's assignments).
pub const CONSUMER_PROTOCOL_ASSIGNMENT: &Message = &groups::CONSUMER_PROTOCOL_ASSIGNMENT;

/// The table of `api_key`'s request, if the broker decodes it.
pub fn request(api_key: ApiKey) -> Option<&'static Message> {
    REQUESTS
        .iter()
        .copied()
        .find(|message| message.api_key == Some(api_key))
}

#[cfg(test)]
#[path = "schema_test.rs"]
mod tests;
