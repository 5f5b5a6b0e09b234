//! shardlog's ISR protocol for partition data, sans-IO (issue 13, item 3).
//!
//! - [`epochs`]: the leader-epoch cache and where a follower's log must be
//!   cut to follow a new leader (KIP-101, KIP-279).
//! - [`leader::Leader`]: pushes what it appends to its followers at once,
//!   advances the high watermark to the lowest durable offset over the ISR
//!   (never back), and asks the controller to shrink or grow the ISR.
//! - [`follower::Follower`]: cuts its log to the leader's history, takes
//!   pushes that start at its log end, acknowledges log end and durable
//!   offset.
//!
//! A simulator (`sim_test.rs`) runs a partition's replicas with a model of
//! the controller through lost, late and repeated messages, crashes that
//! lose what was not yet durable, and leader changes, checking that no
//! acknowledged record is ever lost or changed.

pub mod epochs;
pub mod follower;
pub mod leader;
pub mod wire;

pub use epochs::{EpochCache, UNDEFINED, truncation_offset};
pub use follower::{Follower, FollowerAction, PushRefused};
pub use leader::{Assignment, Leader, LeaderAction, LeaderConfig};

/// Where a replica's log stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogPosition {
    /// The offset the next record takes.
    pub log_end: i64,
    /// Everything below is on disk.
    pub durable: i64,
    /// Consumers may read below it.
    pub high_watermark: i64,
}

#[cfg(test)]
mod sim_test;
