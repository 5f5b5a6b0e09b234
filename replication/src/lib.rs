//! Cluster metadata, and later the metadata quorum and ISR data replication.
//!
//! Module map:
//! - [`metadata`]: the cluster's topic metadata (topics, topic ids,
//!   partition counts, topic configs and broker-default configs) as a sans-IO
//!   state machine: a command is checked against the current state and
//!   becomes a [`metadata::MetadataRecord`]; records are applied in order.
//!   The records are what gets persisted (Kafka's KRaft keeps its metadata
//!   the same way, as a log of records), so replaying them after a restart
//!   rebuilds the same state. Records are encoded with rkyv, versioned, and
//!   checked when decoded: bytes from disk never panic the broker.
//!   [`metadata::MetadataStore`] keeps it durable in any [`log_store::LogStore`].
//! - [`log_store`]: the trait through which this crate reaches a durable log
//!   (implemented by `engine::Log`).
//!
//! - [`quorum`]: the metadata quorum: a Raft voter ([`quorum::QuorumNode`],
//!   raft-rs underneath) replicating those records, and the controller that
//!   decides them (brokers, fencing, replica assignment, leaders and ISRs).
//!
//! What will live here too: the in-sync replica set and high watermark of
//! the data, and failover, all sans-IO and driven in tests by a seeded
//! deterministic simulator. This crate does not depend on
//! glommio or on `engine`; it reaches a log through a trait it defines.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod archive;
pub mod isr;
pub mod log_store;
pub mod metadata;
pub mod quorum;
#[cfg(test)]
mod sim_rng;
