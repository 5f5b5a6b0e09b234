//! The task that drives this broker's quorum voter (see the module above).

use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::{Log, LogConfig, rt};
use futures::channel::{mpsc, oneshot};
use futures::{FutureExt, StreamExt};
use replication::metadata::ClusterMetadata;
use replication::quorum::wire::{self, Frame, RemoteError};
use replication::quorum::{
    Action, Committed, ControllerConfig, ControllerError, ControllerRequest, QuorumConfig,
    QuorumNode, RaftJournal,
};

use super::{Cluster, ClusterConfig, raft_id};
use crate::broker::Shard;
use crate::handlers::errors::{NOT_CONTROLLER, REQUEST_TIMED_OUT, controller_error};
use crate::server::Stream;
use crate::server::internal::{PeerLink, PeerSink, bind_internal};

/// What the driver takes in.
#[derive(Debug)]
pub(super) enum Input {
    /// A frame a peer sent.
    Frame(u64, Frame),
    /// A request of this broker to the controller.
    Propose {
        request: ControllerRequest,
        reply: oneshot::Sender<Result<Committed, RemoteError>>,
    },
}

/// The largest metadata entry (a CreateTopics of many partitions is one)
/// or snapshot.
const JOURNAL_RECORD_BYTES_MAX: u32 = 64 << 20;
/// The journal's segments: small, so that the part before a snapshot is
/// deleted from disk soon after the snapshot.
const JOURNAL_SEGMENT_BYTES: u64 = 8 << 20;

/// Why the cluster side could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterStartError {
    #[error("internal listener {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Engine(#[from] engine::Error),
    #[error(transparent)]
    Journal(#[from] replication::quorum::JournalError<engine::Error>),
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
}

/// Opens the voter's journal, starts the voter, the internal listener, the
/// links to the peers and the broker's registration; returns the handle.
/// On shard 0, once the shard serves.
pub async fn start(
    shard: &Rc<Shard>,
    config: ClusterConfig,
    data_dir: &Path,
) -> Result<Rc<Cluster>, ClusterStartError> {
    let listener =
        bind_internal(config.internal_listen).map_err(|source| ClusterStartError::Listen {
            addr: config.internal_listen,
            source,
        })?;
    let log_config = LogConfig {
        max_message_bytes: JOURNAL_RECORD_BYTES_MAX,
        segment_bytes: JOURNAL_SEGMENT_BYTES,
        ..LogConfig::default()
    };
    let log = Log::open(data_dir.join("quorum"), log_config, rt::wall_clock_ms()).await?;
    let (journal, durable) = RaftJournal::open(log).await?;
    let me = raft_id(config.node_id);
    let voters: Vec<u64> = config.voters.iter().map(|&(id, _)| raft_id(id)).collect();
    tracing::info!(
        node = config.node_id,
        snapshot = durable.snapshot_index(),
        entries = durable.entries.len(),
        term = durable.hard_state.term,
        "quorum voter starting"
    );
    let node = QuorumNode::new(
        QuorumConfig {
            node_id: me,
            voters: voters.clone(),
            election_ticks: 10,
            heartbeat_ticks: 2,
            seed: rt::wall_clock_ms().unsigned_abs() ^ me,
            snapshot_bytes: config.metadata_snapshot_bytes,
            controller: ControllerConfig {
                session_timeout_ms: u64::try_from(config.session_timeout.as_millis())
                    .unwrap_or(u64::MAX),
                default_replication_factor: 1,
                auto_leader_rebalance: config.auto_leader_rebalance,
                leader_imbalance_check_interval_ms: u64::try_from(
                    config.leader_imbalance_check_interval.as_millis(),
                )
                .unwrap_or(u64::MAX),
                leader_imbalance_per_broker_percentage: config
                    .leader_imbalance_per_broker_percentage,
            },
        },
        durable,
    )?;
    let cluster_id = config.cluster_id();
    let hello = wire::encode(&Frame::Hello {
        node_id: me,
        cluster_id: cluster_id.clone(),
    });
    let links = config
        .voters
        .iter()
        .filter(|&&(id, _)| raft_id(id) != me)
        .map(|&(id, addr)| {
            (
                raft_id(id),
                PeerLink::start(raft_id(id), addr, hello.clone(), config.tls.clone()),
            )
        })
        .collect();
    let (inputs, incoming) = mpsc::unbounded();
    let cluster = Rc::new(Cluster {
        config: config.clone(),
        inputs: inputs.clone(),
        applied: std::cell::Cell::new(0),
        applied_moved: tokio::sync::Notify::new(),
        leaving: std::cell::Cell::new(false),
        incarnation: super::incarnation(),
    });
    let sink = Sink {
        voters: Rc::new(voters),
        inputs,
        shard: Rc::downgrade(shard),
    };
    crate::server::spawn(listener.serve(cluster_id, sink, config.tls.clone()));
    let (installs, to_install) = mpsc::unbounded();
    crate::server::spawn(install(Rc::clone(shard), Rc::clone(&cluster), to_install));
    let driver = Driver {
        node,
        journal,
        links,
        installs,
        local: HashMap::new(),
        remote: HashMap::new(),
        next_id: 1,
        me,
        known_leader: (0, None),
    };
    crate::server::spawn(driver.run(incoming, config.tick));
    crate::server::spawn(super::lifecycle::run(Rc::clone(shard), Rc::clone(&cluster)));
    Ok(cluster)
}

/// Installs committed metadata on every shard, in order, the latest when
/// several wait (shards bring their partitions in line, which takes disk
/// I/O: the voter's Raft loop must not wait for it, or followers would
/// miss heartbeats and call elections), then marks it applied here.
///
/// Nothing is installed before this process's own registration: a
/// restarted broker replays the metadata log from its journal, and the
/// states on the way are history (in one of them it still leads what it
/// led before it died). Acting on them, it would take leaderships and
/// writes that moved long ago; from its registration on it is caught up
/// (Kafka's broker waits the same way before it serves).
async fn install(
    shard: Rc<Shard>,
    cluster: Rc<Cluster>,
    mut states: mpsc::UnboundedReceiver<(Arc<ClusterMetadata>, u64)>,
) {
    let node_id = cluster.config.node_id;
    let mut caught_up = false;
    while let Some(mut next) = states.next().await {
        while let Ok(newer) = states.try_recv() {
            next = newer;
        }
        let (state, index) = next;
        if !caught_up {
            caught_up = state
                .broker(node_id)
                .is_some_and(|b| b.incarnation == cluster.incarnation);
            if !caught_up {
                continue;
            }
            tracing::info!(node_id, index, "caught up with the metadata log");
        }
        shard.install_and_broadcast(state).await;
        cluster.applied_to(index);
    }
}

/// A request of this broker awaiting its reply: where the reply goes, when
/// it was asked, and the leader it went to (`None`: proposed here).
type Asked = (
    oneshot::Sender<Result<Committed, RemoteError>>,
    Instant,
    Option<u64>,
);

struct Driver {
    node: QuorumNode,
    journal: RaftJournal<Log>,
    links: HashMap<u64, PeerLink>,
    /// Committed metadata for the installer, with the index it reaches.
    installs: mpsc::UnboundedSender<(Arc<ClusterMetadata>, u64)>,
    /// This broker's requests awaiting their reply, by proposal id.
    local: HashMap<u64, Asked>,
    /// Peers' requests awaiting their reply: proposal id -> (peer, their id).
    remote: HashMap<u64, (u64, u64, Instant)>,
    next_id: u64,
    me: u64,
    /// The (term, leader) last logged.
    known_leader: (u64, Option<u64>),
}

impl Driver {
    async fn run(mut self, mut incoming: mpsc::UnboundedReceiver<Input>, tick: Duration) {
        let started = Instant::now();
        let mut next_tick = Instant::now() + tick;
        loop {
            let now = Instant::now();
            if now >= next_tick {
                next_tick = now + tick;
                let now_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                self.node.tick(now_ms);
                self.expire_waiters(now);
            } else {
                let wait = rt::sleep(next_tick - now).fuse();
                let mut wait = std::pin::pin!(wait);
                futures::select! {
                    input = incoming.next() => match input {
                        Some(input) => self.take(input),
                        None => return,
                    },
                    () = wait => continue,
                }
            }
            if !self.perform().await {
                tracing::error!("the quorum voter stopped: its journal cannot be written");
                return;
            }
        }
    }

    fn take(&mut self, input: Input) {
        match input {
            Input::Frame(from, Frame::Raft(message)) => {
                if message.from != from || message.to != self.me {
                    tracing::warn!(from, "raft message with foreign addresses dropped");
                    return;
                }
                self.node.step(message);
            }
            Input::Frame(from, Frame::Request { id, request, .. }) => {
                let proposal = self.next_id();
                self.remote.insert(proposal, (from, id, Instant::now()));
                self.node.propose(proposal, request);
            }
            Input::Frame(_, Frame::Reply { id, result }) => {
                if let Some((reply, _, _)) = self.local.remove(&id) {
                    let _ = reply.send(result);
                }
            }
            Input::Frame(_, Frame::Hello { .. } | Frame::DataHello { .. }) => {}
            Input::Propose { request, reply } => {
                let proposal = self.next_id();
                match self.node.leader() {
                    Some(leader) if leader != self.me && !self.node.is_leader() => {
                        self.local
                            .insert(proposal, (reply, Instant::now(), Some(leader)));
                        let frame = Frame::Request {
                            id: proposal,
                            from: self.me,
                            request,
                        };
                        self.send(leader, &frame);
                    }
                    _ => {
                        self.local.insert(proposal, (reply, Instant::now(), None));
                        self.node.propose(proposal, request);
                    }
                }
            }
        }
    }

    /// Performs the node's actions in order; false when the journal failed
    /// (the voter must not go on from a state it could not make durable).
    async fn perform(&mut self) -> bool {
        let mut applied = None;
        for action in self.node.poll() {
            match action {
                Action::Send(messages) => {
                    for message in messages {
                        let to = message.to;
                        self.send(to, &Frame::Raft(message));
                    }
                }
                Action::Persist {
                    entries,
                    hard_state,
                } => {
                    if let Err(e) = self.journal.persist(&entries, hard_state.as_ref()).await {
                        tracing::error!(error = %e, "raft journal write failed");
                        return false;
                    }
                }
                Action::Snapshot {
                    snapshot,
                    hard_state,
                    entries,
                } => {
                    let at = snapshot.get_metadata().index;
                    if let Err(e) = self
                        .journal
                        .snapshot(&snapshot, &hard_state, &entries)
                        .await
                    {
                        tracing::error!(error = %e, "raft journal snapshot failed");
                        return false;
                    }
                    tracing::debug!(
                        index = at,
                        bytes = snapshot.get_data().len(),
                        "metadata snapshot durable"
                    );
                }
                Action::Applied { index, .. } | Action::Restored { index } => applied = Some(index),
                Action::Reply { id, result } => self.reply(id, result),
            }
        }
        let leader = (self.node.term(), self.node.leader());
        if leader != self.known_leader {
            self.known_leader = leader;
            self.asked_elsewhere(leader.1);
            let leader_node = leader.1.map(super::node_id);
            tracing::info!(term = leader.0, leader = ?leader_node, "metadata quorum leader");
        }
        if let Some(index) = applied {
            let state = Arc::new(self.node.metadata().clone());
            let _ = self.installs.unbounded_send((state, index));
        }
        true
    }

    /// The quorum's leader changed (to `leader`): requests sent to another
    /// voter get no answer from it now, so they are answered NOT_CONTROLLER
    /// at once (the asker retries with the new leader) instead of at their
    /// timeout. A broker's heartbeat in flight to a leader that died would
    /// otherwise reach the new one only after the attempt's timeout, which
    /// can be as long as a session (and the new controller fences it).
    fn asked_elsewhere(&mut self, leader: Option<u64>) {
        self.fail_local(
            |(_, _, to)| to.is_some_and(|to| Some(to) != leader),
            NOT_CONTROLLER,
            "the quorum's leader changed",
        );
    }

    /// Answers this broker's requests that `stale` picks with `code`.
    fn fail_local(&mut self, stale: impl Fn(&Asked) -> bool, code: i16, message: &str) {
        for (_, (reply, _, _)) in self.local.extract_if(|_, asked| stale(asked)) {
            let _ = reply.send(Err(super::remote(code, message)));
        }
    }

    fn reply(&mut self, id: u64, result: Result<Committed, ControllerError>) {
        let result = result.map_err(|e| controller_error(&e));
        if let Some((reply, _, _)) = self.local.remove(&id) {
            let _ = reply.send(result);
        } else if let Some((peer, their_id, _)) = self.remote.remove(&id) {
            self.send(
                peer,
                &Frame::Reply {
                    id: their_id,
                    result,
                },
            );
        }
    }

    /// Requests whose reply never came (a lost frame, a leader that died).
    fn expire_waiters(&mut self, now: Instant) {
        let timeout = super::ATTEMPT_TIMEOUT;
        self.fail_local(
            |(_, at, _)| now.duration_since(*at) > timeout,
            REQUEST_TIMED_OUT,
            "no reply",
        );
        self.remote
            .retain(|_, (_, _, at)| now.duration_since(*at) <= timeout * 4);
    }

    fn send(&mut self, to: u64, frame: &Frame) {
        if let Some(link) = self.links.get_mut(&to) {
            link.send(wire::encode(frame));
        }
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

/// Where the internal listener's connections go: quorum frames to the
/// voter's driver, data connections to the shard they name.
#[derive(Clone)]
struct Sink {
    voters: Rc<Vec<u64>>,
    inputs: mpsc::UnboundedSender<Input>,
    shard: std::rc::Weak<Shard>,
}

impl PeerSink for Sink {
    fn known(&self, node_id: u64) -> bool {
        self.voters.contains(&node_id)
    }

    fn deliver(&self, node_id: u64, frame: Frame) -> bool {
        self.inputs
            .unbounded_send(Input::Frame(node_id, frame))
            .is_ok()
    }

    fn admits(&self, principal: &str, host: &str) -> bool {
        use replication::metadata::acl::{CLUSTER_NAME, operation, resource};
        self.shard.upgrade().is_some_and(|me| {
            me.allowed_as(
                principal,
                host,
                operation::CLUSTER_ACTION,
                resource::CLUSTER,
                CLUSTER_NAME,
            )
        })
    }

    fn data(&self, node_id: u64, shard: u32, stream: Stream, peer: Option<std::net::SocketAddr>) {
        if let Some(me) = self.shard.upgrade() {
            me.accept_data_link(super::node_id(node_id), shard, stream, peer);
        }
    }
}
