//! The Kafka protocol front end (not built yet).
//!
//! What will live here: listeners on every shard (SO_REUSEPORT), connections
//! and framing (`server/connection.rs`: read the size, reject what exceeds
//! `request_bytes_max` before allocating, decode, dispatch, answer in request
//! order), one handler per Kafka API under `handlers/` with the single table
//! from API key to handler, routing of each request part to the shard that
//! owns its partition, and the HTTP API. Messages come from the
//! `kafka-protocol` crate; Produce and Fetch may get their own zero-copy
//! framing where a benchmark shows the need.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
