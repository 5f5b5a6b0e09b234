//! The metadata quorum (Kafka's KRaft): the cluster metadata as a Raft log
//! on the voters, and the controller that decides what is appended to it.
//!
//! - [`node::QuorumNode`]: one voter, sans-IO. Raft is raft-rs's
//!   `RawNode`; committed entries hold [`crate::metadata::MetadataRecord`]s,
//!   applied in index order to a [`crate::metadata::ClusterMetadata`] on
//!   every voter alike.
//! - [`journal::RaftJournal`]: a voter's Raft hard state and log, durable
//!   in any [`crate::log_store::LogStore`] (the broker's `engine::Log`).
//! - [`wire`]: the frames voters and brokers exchange (Raft messages,
//!   controller requests and replies), length-prefixed, checked on decode.
//! - [`controller::Controller`]: what the leader decides (broker
//!   registration, heartbeats and fencing, replica assignment, leader
//!   election from the ISR, ISR changes), against the committed state plus
//!   what it appended and not yet committed.
//!
//! A simulator (`sim_test.rs`) drives voters through message loss, delay,
//! duplication, partitions and crashes with a seed, checking Raft's and the
//! controller's invariants at every step.

pub mod controller;
pub mod journal;
pub mod node;
mod raft_logger;
pub mod wire;

pub use controller::{Controller, ControllerConfig, ControllerError, ControllerRequest, NO_LEADER};
pub use journal::{JournalError, RaftJournal};
pub use node::{Action, Committed, DurableState, QuorumConfig, QuorumNode};

/// Raft's message and log types, as the driver moves and stores them.
pub use raft::prelude::{Entry, HardState, Message};

#[cfg(test)]
mod sim_test;
