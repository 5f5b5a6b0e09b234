//! A broker in a cluster: its voter of the metadata quorum and its life as
//! a registered broker, both on shard 0.
//!
//! The voter (`replication::quorum::QuorumNode`, sans-IO) is driven by one
//! task, [`driver`]: Raft ticks, frames from peers (the internal listener,
//! `server::internal`), and controller requests from this broker; it
//! performs the node's actions in order: messages to the peers' links,
//! entries made durable in the Raft journal (`<data-dir>/quorum/`) before
//! anything after them, committed metadata installed on every shard, and
//! replies. Another task registers the broker and heartbeats
//! ([`lifecycle`]).
//!
//! Node ids are Kafka's (0 and up); Raft's ids are the node id plus one
//! (raft-rs reserves 0).

mod driver;
mod lifecycle;

use std::cell::Cell;
use std::net::SocketAddr;
use std::time::Duration;

use futures::channel::{mpsc, oneshot};
use replication::quorum::wire::RemoteError;
use replication::quorum::{Committed, ControllerRequest};

pub use driver::{ClusterStartError, start};

use crate::handlers::errors::{NOT_CONTROLLER, REQUEST_TIMED_OUT};

/// A cluster member's settings (`--node-id`, `--internal-listen`, `--voters`).
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub node_id: i32,
    /// Where this broker listens for its peers.
    pub internal_listen: SocketAddr,
    /// Every voter (this one too): node id and internal address.
    pub voters: Vec<(i32, SocketAddr)>,
    /// `broker.session.timeout.ms`.
    pub session_timeout: Duration,
    /// `broker.heartbeat.interval.ms`.
    pub heartbeat_interval: Duration,
    /// One Raft tick; elections time out after 10 to 20.
    pub tick: Duration,
    /// `replica.lag.time.max.ms`: a follower that has not caught up with
    /// the leader's log end for this long leaves the ISR.
    pub replica_lag_time_max: Duration,
    /// `auto.leader.rebalance.enable`
    pub auto_leader_rebalance: bool,
    /// `leader.imbalance.check.interval.seconds`
    pub leader_imbalance_check_interval: Duration,
    /// `leader.imbalance.per.broker.percentage`
    pub leader_imbalance_per_broker_percentage: u32,
    /// `leader.replication.throttled.rate`: bytes per second a leader
    /// sends to followers outside the ISR (catching up), over all its
    /// shards; 0: no limit.
    pub leader_replication_throttled_rate: u64,
    /// `metadata.log.max.record.bytes.between.snapshots`: the metadata
    /// log's bytes after which a voter snapshots the metadata and deletes
    /// the log before it.
    pub metadata_snapshot_bytes: u64,
    /// `internal-ssl`: the internal listener's TLS (client certificates
    /// required) and the certificate this broker presents to its peers.
    pub tls: Option<std::sync::Arc<crate::server::tls::Tls>>,
}

impl ClusterConfig {
    /// The cluster's id, the same on every member: from the voters.
    pub fn cluster_id(&self) -> String {
        let mut voters = self.voters.clone();
        voters.sort();
        let text: Vec<String> = voters
            .iter()
            .map(|(id, addr)| format!("{id}@{addr}"))
            .collect();
        let hash = crc32c::crc32c(text.join(",").as_bytes());
        format!("shardlog-{hash:08x}")
    }
}

/// Raft's id of a node.
pub fn raft_id(node_id: i32) -> u64 {
    u64::try_from(node_id).unwrap_or(0) + 1
}

/// The node id of a Raft id.
pub fn node_id(raft_id: u64) -> i32 {
    i32::try_from(raft_id.saturating_sub(1)).unwrap_or(-1)
}

/// How long a controller request is retried (NOT_CONTROLLER while a leader
/// is elected, lost frames) before it fails.
const REQUEST_DEADLINE: Duration = Duration::from_secs(15);
/// One attempt waits this long for its reply.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

/// This process's life as a broker, drawn once and the same on every
/// shard: its registration carries it, so a restart is told from the
/// previous process with the same id, and a shard knows the metadata has
/// reached its own registration (what the metadata says since is news,
/// not a replay of a previous life).
pub fn incarnation() -> u64 {
    static INCARNATION: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *INCARNATION.get_or_init(|| uuid::Uuid::new_v4().as_u64_pair().0)
}

/// The handle on shard 0 through which the broker asks the controller.
#[derive(Debug)]
pub struct Cluster {
    pub config: ClusterConfig,
    inputs: mpsc::UnboundedSender<driver::Input>,
    /// The Raft index up to which this voter applied the metadata.
    applied: Cell<u64>,
    applied_moved: tokio::sync::Notify,
    /// Set at controlled shutdown: the registration task stops heartbeating.
    leaving: Cell<bool>,
    /// [`incarnation`].
    incarnation: u64,
}

impl Cluster {
    /// Asks the controller once: the reply, or an error after
    /// [`ATTEMPT_TIMEOUT`].
    async fn attempt(&self, request: ControllerRequest) -> Result<Committed, RemoteError> {
        let (reply, answer) = oneshot::channel();
        let input = driver::Input::Propose { request, reply };
        if self.inputs.unbounded_send(input).is_err() {
            return Err(remote(NOT_CONTROLLER, "the quorum voter stopped"));
        }
        let timeout = engine::rt::sleep(ATTEMPT_TIMEOUT);
        let answer = std::pin::pin!(answer);
        let timeout = std::pin::pin!(timeout);
        match futures::future::select(answer, timeout).await {
            futures::future::Either::Left((Ok(result), _)) => result,
            _ => Err(remote(
                REQUEST_TIMED_OUT,
                "the controller did not answer in time",
            )),
        }
    }

    /// Asks the controller, retrying while it is being elected or a frame
    /// was lost; once accepted, waits until this broker applied the change
    /// (so the client's next request sees it here).
    pub async fn request(&self, request: ControllerRequest) -> Result<Committed, RemoteError> {
        let deadline = std::time::Instant::now() + REQUEST_DEADLINE;
        let committed = loop {
            match self.attempt(request.clone()).await {
                Err(e)
                    if matches!(e.code, NOT_CONTROLLER | REQUEST_TIMED_OUT)
                        && std::time::Instant::now() < deadline =>
                {
                    engine::rt::sleep(Duration::from_millis(100)).await;
                }
                other => break other?,
            }
        };
        while self.applied.get() < committed.index {
            let moved = self.applied_moved.notified();
            let mut moved = std::pin::pin!(moved);
            moved.as_mut().enable();
            if self.applied.get() >= committed.index {
                break;
            }
            let timeout = std::pin::pin!(engine::rt::sleep(ATTEMPT_TIMEOUT));
            if let futures::future::Either::Right(_) = futures::future::select(moved, timeout).await
                && std::time::Instant::now() >= deadline
            {
                return Err(remote(
                    REQUEST_TIMED_OUT,
                    "the change did not reach this broker",
                ));
            }
        }
        Ok(committed)
    }

    /// Controlled shutdown: asks the controller to fence this broker, so
    /// its leaderships move now (not a session later) and its next start
    /// registers at once. Best effort: a controller that cannot be reached
    /// fences it when its session ends.
    pub async fn leave(&self, shard: &crate::broker::Shard) {
        self.leaving.set(true);
        let node_id = self.config.node_id;
        let Some(broker) = shard.metadata().broker(node_id).cloned() else {
            return;
        };
        if broker.fenced {
            return;
        }
        let request = ControllerRequest::Heartbeat {
            broker_id: node_id,
            broker_epoch: broker.broker_epoch,
            caught_up: true,
            want_fence: true,
        };
        match self.attempt(request).await {
            Ok(_) => tracing::info!(node_id, "controlled shutdown: fenced, leaderships moved"),
            Err(e) => tracing::warn!(node_id, code = e.code, message = %e.message,
                "controlled shutdown: the controller did not fence this broker; it will when its session ends"),
        }
    }

    fn applied_to(&self, index: u64) {
        if index > self.applied.get() {
            self.applied.set(index);
            self.applied_moved.notify_waiters();
        }
    }
}

fn remote(code: i16, message: &str) -> RemoteError {
    RemoteError {
        code,
        message: message.to_string(),
        leader: None,
    }
}
