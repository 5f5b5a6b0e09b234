//! Kafka record batches (RecordBatch v2, magic 2).
//!
//! Layout (big-endian), as in Kafka's `DefaultRecordBatch`:
//!
//! | bytes  | field                  | covered by CRC |
//! | ------ | ---------------------- | -------------- |
//! | 0..8   | base offset            | no             |
//! | 8..12  | batch length (after this field) | no    |
//! | 12..16 | partition leader epoch | no             |
//! | 16     | magic (2)              | no             |
//! | 17..21 | CRC-32C                | no             |
//! | 21..23 | attributes             | yes            |
//! | 23..27 | last offset delta      | yes            |
//! | 27..35 | base timestamp         | yes            |
//! | 35..43 | max timestamp          | yes            |
//! | 43..51 | producer id            | yes            |
//! | 51..53 | producer epoch         | yes            |
//! | 53..57 | base sequence          | yes            |
//! | 57..61 | record count           | yes            |
//! | 61..   | records (maybe compressed) | yes        |
//!
//! The broker rewrites only the 61-byte header ([`BatchHeader`]); record
//! bytes are stored and served exactly as the producer sent them, unless
//! the topic names a codec other than the producer's (`compression.type`)
//! or bounds timestamps, and then [`rewrite`] reads them.

pub mod builder;
pub mod codec;
mod compact;
mod record_batch;
pub mod records;
mod rewrite;
mod validator;

pub use compact::{Retained, retain_records};
pub use record_batch::{BatchHeader, Compression, RecordBatch};
pub use rewrite::{Rewrite, rewrite_batches};
pub use validator::{BatchError, BatchErrorKind, Batches, ValidateMode, check_batch, validate};
pub(crate) use validator::{framed_size_of, read_varint};

/// Bytes before the batch length field ends: base offset + batch length.
pub const LOG_OVERHEAD: usize = 12;
/// Bytes of the fixed batch header, up to and including the record count.
pub const HEADER_BYTES: usize = 61;
/// Where the CRC-covered region starts (the attributes field).
pub const CRC_START: usize = 21;
/// The only batch format we accept.
pub const MAGIC_V2: i8 = 2;
/// A timestamp field that carries no timestamp.
pub const NO_TIMESTAMP: i64 = -1;
