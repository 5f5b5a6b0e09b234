//! Cluster membership, the metadata quorum and ISR data replication (not
//! built yet).
//!
//! What will live here: sans-IO state machines (events in, commands out, time
//! passed in) for the metadata quorum, the in-sync replica set and the high
//! watermark, leader election and failover, driven in tests by a seeded
//! deterministic simulator. This crate does not depend on glommio; it reaches
//! the partition log through a `LogStore` trait it defines and `engine`
//! implements.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
