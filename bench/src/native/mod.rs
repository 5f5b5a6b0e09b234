//! The native driver: our own pipelined Kafka client on the broker's
//! runtime (glommio, one executor thread per client), so that on a small
//! machine the load generator costs less than librdkafka's threads, and so
//! that a second, independent client cross-checks what librdkafka sees.
//!
//! - [`wire`]: framing, pipelined connections, ApiVersions, Metadata; the
//!   only file that touches glommio.
//! - [`producer`]: batches per partition by linger and size, compressed,
//!   pipelined Produce requests, the Java client's murmur2 partitioner.
//! - [`consumer`]: long-polling Fetch pipelined with reading, batches
//!   decompressed and walked in place, log-start resets.
//! - [`group`]: classic consumer-group membership with the range assignor,
//!   commits before each rejoin.

pub mod consumer;
pub mod group;
pub mod producer;
pub mod wire;

pub use consumer::consume;
pub use engine::partitioner::{murmur2, partition_for_key};
pub use producer::produce;
