//! One shard of the broker: its partitions, its view of the cluster
//! metadata, and its links to the other shards.
//!
//! Metadata has a single writer, shard 0, which keeps it durable in a
//! [`MetadataStore`] under `<data-dir>/meta/`. Other shards send it their
//! commands over the mesh. After every change shard 0 sends the new state (an
//! immutable snapshot, replaced, never mutated) to every shard, and each
//! shard creates or deletes the partitions it owns to match.

mod authorize;
mod forward;
pub mod groups;
mod internal;
pub mod partition_call;
mod reconcile;
pub(crate) mod replica;
pub mod transactions;
mod txn_peers;
mod view;

pub use view::{BrokerView, PartitionView};

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use engine::{Log, LogConfig, PartitionTable, TopicPartition, rt};
use futures::channel::oneshot;
use replication::metadata::{
    ClusterMetadata, Command, MetadataError, MetadataStore, StoreError, TopicId,
};

use crate::handlers::fetch_session::FetchSessions;
use crate::server::mesh::{MeshPlan, ShardMesh};

/// What this broker tells clients about itself.
#[derive(Debug, Clone)]
pub struct Node {
    pub node_id: i32,
    /// Where clients are told to connect, per listener (Kafka's
    /// `advertised.listeners`), in the order configured.
    pub listeners: Vec<AdvertisedListener>,
    /// The listener other brokers send this one Kafka requests on
    /// (Kafka's `inter.broker.listener.name`).
    pub inter_broker_listener: String,
    /// How this broker authenticates on the other brokers' inter-broker
    /// listener.
    pub inter_broker_security: crate::server::peer::PeerSecurity,
    pub cluster_id: String,
    /// The data directory, as DescribeLogDirs names it.
    pub log_dir: String,
}

/// One listener's advertised address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvertisedListener {
    /// Its name (`PLAINTEXT` for the one `--listen` makes).
    pub name: String,
    pub host: String,
    pub port: i32,
}

impl Node {
    /// The address advertised on listener `name`.
    pub fn advertised(&self, name: &str) -> Option<&AdvertisedListener> {
        self.listeners.iter().find(|l| l.name == name)
    }
}

/// Broker settings that shape what clients see (from flags and the config
/// file; fixed for the process lifetime).
#[derive(Debug, Clone)]
pub struct Settings {
    /// `auto.create.topics.enable`: Metadata creates unknown topics.
    pub auto_create_topics: bool,
    /// `num.partitions`: partitions of auto-created topics and of
    /// CreateTopics asking for the default (-1).
    pub num_partitions: i32,
    /// Static broker defaults of topic configs (topic keys, validated),
    /// under the dynamic ones set through AlterConfigs.
    pub topic_defaults: BTreeMap<String, String>,
    /// `offsets.topic.num.partitions`: partitions of `__consumer_offsets`.
    pub offsets_topic_partitions: i32,
    /// `offsets.topic.replication.factor`: replicas of each partition of
    /// `__consumer_offsets` in a cluster (at most its voters; a broker
    /// alone keeps one).
    pub offsets_topic_replication_factor: i16,
    /// `transaction.state.log.replication.factor`, the same for
    /// `__transaction_state`.
    pub transaction_topic_replication_factor: i16,
    /// The group coordinator's timeouts.
    pub group: crate::group::GroupConfig,
    /// `offsets.retention.minutes`, in ms: offsets of groups without
    /// members expire this long after their commit.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`.
    pub offsets_retention_check_interval: std::time::Duration,
    /// `offsets.topic.segment.bytes`: the segment size `__consumer_offsets`
    /// is created with (the log cleaner compacts sealed segments only).
    pub offsets_topic_segment_bytes: u64,
    /// `transaction.state.log.segment.bytes`, the same for
    /// `__transaction_state`.
    pub transaction_topic_segment_bytes: u64,
    /// `transaction.state.log.num.partitions`: partitions of
    /// `__transaction_state`.
    pub transaction_topic_partitions: i32,
    /// `transaction.max.timeout.ms`: the longest transaction timeout a
    /// producer may ask for.
    pub transaction_max_timeout_ms: i32,
    /// `producer.id.expiration.ms`: a partition forgets a producer idle
    /// this long.
    pub producer_id_expiration_ms: i64,
    /// The ACL authorizer (`authorizer-enabled`): `None` allows every
    /// request, as Kafka without `authorizer.class.name`.
    pub authorizer: Option<replication::metadata::acl::AuthorizerConfig>,
    /// Set when the broker is a member of a cluster (`--voters`).
    pub cluster: Option<crate::cluster::ClusterConfig>,
    /// `transactional.id.expiration.ms`: a transactional id with no
    /// transaction running is forgotten this long after its last use.
    pub transactional_id_expiration_ms: i64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            auto_create_topics: true,
            num_partitions: 1,
            topic_defaults: BTreeMap::new(),
            offsets_topic_partitions: 50,
            offsets_topic_replication_factor: 3,
            transaction_topic_replication_factor: 3,
            group: crate::group::GroupConfig::default(),
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
            offsets_retention_check_interval: std::time::Duration::from_secs(600),
            offsets_topic_segment_bytes: 100 << 20,
            transaction_topic_segment_bytes: 100 << 20,
            transaction_topic_partitions: 50,
            transaction_max_timeout_ms: crate::txn::TRANSACTION_MAX_TIMEOUT_MS,
            transactional_id_expiration_ms: 7 * 24 * 60 * 60 * 1000,
            producer_id_expiration_ms: engine::PRODUCER_ID_EXPIRATION_MS,
            authorizer: None,
            cluster: None,
        }
    }
}

/// Why a metadata command did not apply.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Refused(#[from] MetadataError),
    #[error("the metadata store failed: {0}")]
    Store(#[source] StoreError<engine::Error>),
    #[error("shard 0, the metadata writer, is gone")]
    WriterGone,
    /// The cluster's controller refused or could not be reached.
    #[error("controller: {}", .0.message)]
    Controller(replication::quorum::wire::RemoteError),
}

/// Messages between shards.
#[derive(Debug)]
pub enum ShardMessage {
    /// To shard 0: apply a command; the reply carries the new state.
    Command {
        command: Command,
        /// Explicit replica lists of the partitions it creates.
        assignments: Option<Vec<Vec<i32>>>,
        reply: oneshot::Sender<Result<Arc<ClusterMetadata>, CommandError>>,
    },
    /// To the owner of a partition: run an operation on it. `seen`: the
    /// metadata the sender routed it by (see [`Shard::catch_up`]).
    Partition {
        tp: engine::TopicPartition,
        seen: u64,
        op: partition_call::PartitionOp,
        reply: oneshot::Sender<partition_call::PartitionResult>,
    },
    /// To the owner of partitions of `topic`: run an operation on each (all
    /// at once; the results in the same order). `seen`: as for
    /// `Partition`.
    Partitions {
        topic: String,
        ops: Vec<(i32, partition_call::PartitionOp)>,
        seen: u64,
        reply: oneshot::Sender<Vec<partition_call::PartitionResult>>,
    },
    /// To the owner of partitions: a fetch's long poll over them (see
    /// [`Shard::wait_for_appends`]); the reply says it ended.
    WaitForAppends {
        partitions: Vec<(engine::TopicPartition, i64)>,
        deadline: std::time::Instant,
        seen: u64,
        reply: oneshot::Sender<()>,
    },
    /// To a group's coordinator shard: run a group request. `seen`: the
    /// metadata the sender routed it by (see [`Shard::catch_up`]).
    Group {
        group_id: String,
        partition: i32,
        seen: u64,
        op: groups::GroupOp,
        reply: oneshot::Sender<groups::GroupAnswer>,
    },
    /// To a transactional id's coordinator shard: run a request (`seen`:
    /// as for `Group`).
    Txn {
        transactional_id: String,
        partition: i32,
        seen: u64,
        op: transactions::TxnOp,
        reply: oneshot::Sender<transactions::TxnAnswer>,
    },
    /// To every shard: the transactional ids it coordinates.
    ListTransactions {
        reply: oneshot::Sender<Vec<transactions::TxnListing>>,
    },
    /// To a group's coordinator shard: a consume of a group member over
    /// HTTP (its instances live there).
    HttpConsume {
        consume: crate::http::ConsumeCall,
        seen: u64,
        reply: oneshot::Sender<crate::http::ConsumeAnswer>,
    },
    /// To every shard: its metrics (a scrape of `/metrics`).
    Metrics {
        reply: oneshot::Sender<crate::metrics::ShardMetrics>,
    },
    /// To every shard: the groups it coordinates.
    ListGroups {
        reply: oneshot::Sender<Vec<crate::group::ListedGroup>>,
    },
    /// From shard 0: a peer's data connection for this shard (its
    /// descriptor, owned by the message).
    DataLink { from: i32, fd: std::os::fd::RawFd },
    /// A frame of the ISR protocol for a partition this shard owns, which
    /// came in on another shard's connection.
    Data {
        from: i32,
        frame: replication::isr::wire::DataFrame,
    },
    /// To shard 0: ask the cluster's controller.
    Controller {
        request: replication::quorum::ControllerRequest,
        reply: oneshot::Sender<
            Result<replication::quorum::Committed, replication::quorum::wire::RemoteError>,
        >,
    },
    /// From shard 0: the metadata after a change. The ack is sent once the
    /// shard serves it (its partitions created or deleted to match).
    Snapshot {
        state: Arc<ClusterMetadata>,
        ack: oneshot::Sender<()>,
    },
}

/// Messages one shard may have queued towards another.
pub const MESH_CHANNEL_CAPACITY: usize = 1024;

/// Producer ids a shard reserves at once (Kafka's broker blocks are 1000).
const PRODUCER_ID_BLOCK: i64 = 1000;
/// How long a request routed to another shard waits there for the metadata
/// it was routed by (an install can create thousands of partitions).
const CATCH_UP_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// One shard; lives on its executor, shared by its connections.
#[derive(Debug)]
pub struct Shard {
    pub node: Node,
    pub settings: Settings,
    pub partitions: PartitionTable,
    mesh: ShardMesh<ShardMessage>,
    metadata: RefCell<Arc<ClusterMetadata>>,
    /// Shard 0 only.
    store: Option<tokio::sync::Mutex<MetadataStore<Log>>>,
    /// Serializes reconciliations of the partition table.
    reconciling: tokio::sync::Mutex<()>,
    groups: groups::Groups,
    txns: transactions::Txns,
    /// Shard 0 of a cluster member: its voter and registration.
    cluster: RefCell<Option<Rc<crate::cluster::Cluster>>>,
    /// Set (and notified) once a metadata snapshot from shard 0 serves here.
    installed_once: std::cell::Cell<bool>,
    installed: tokio::sync::Notify,
    /// The producer ids this shard holds, `[next, end)`, reserved durably
    /// in the metadata log a block at a time.
    producer_ids: std::cell::Cell<(i64, i64)>,
    /// Serializes block reservations.
    reserving: tokio::sync::Mutex<()>,
    /// The ISR protocol's roles and links (a cluster member's).
    replicas: replica::Replicas,
    /// Connections to other brokers' Kafka listeners (transaction markers
    /// and checks between a coordinator and partition leaders).
    peers: crate::server::peer::Peers,
    /// The HTTP API's group members whose group this shard coordinates.
    pub(crate) http_members: crate::http::Members,
    /// Fetch sessions (KIP-227) of the connections this shard serves.
    pub(crate) fetch_sessions: RefCell<FetchSessions>,
}

impl Shard {
    /// Joins the mesh, opens this shard's partitions and, on shard 0, the
    /// metadata store (then tells every shard the state).
    pub async fn start(
        node: Node,
        settings: Settings,
        data_dir: &Path,
        plan: MeshPlan<ShardMessage>,
    ) -> Result<Rc<Shard>, StartError> {
        let mut mesh = ShardMesh::join(plan).await.map_err(StartError::Mesh)?;
        let (id, shards) = (mesh.shard(), mesh.shards());
        let store = if id == 0 && settings.cluster.is_none() {
            let log = Log::open(
                meta_dir(data_dir),
                LogConfig::default(),
                rt::wall_clock_ms(),
            )
            .await?;
            Some(
                MetadataStore::open(log)
                    .await
                    .map_err(StartError::Metadata)?,
            )
        } else {
            None
        };
        let metadata = Arc::new(
            store
                .as_ref()
                .map(|s| s.state().clone())
                .unwrap_or_default(),
        );
        let snapshot = Arc::clone(&metadata);
        let defaults = settings.topic_defaults.clone();
        let expiration = settings.producer_id_expiration_ms;
        let config_for =
            move |topic: &str| reconcile::log_config(&defaults, expiration, &snapshot, topic);
        let partitions =
            PartitionTable::open(data_dir, id, shards, config_for, rt::wall_clock_ms()).await?;
        let incoming = mesh.take_incoming();
        let shard = Rc::new(Shard {
            // Before what they are made of moves in.
            groups: groups::Groups::new(settings.group),
            txns: transactions::Txns::new(settings.transaction_max_timeout_ms),
            peers: crate::server::peer::Peers::new(node.inter_broker_security.clone()),
            node,
            settings,
            partitions,
            mesh,
            metadata: RefCell::new(metadata),
            store: store.map(tokio::sync::Mutex::new),
            cluster: RefCell::new(None),
            reconciling: tokio::sync::Mutex::new(()),
            installed_once: std::cell::Cell::new(false),
            installed: tokio::sync::Notify::new(),
            producer_ids: std::cell::Cell::new((0, 0)),
            reserving: tokio::sync::Mutex::new(()),
            replicas: replica::Replicas::new(),
            http_members: crate::http::Members::default(),
            fetch_sessions: RefCell::new(FetchSessions::new(id, shards)),
        });
        if shard.in_cluster() {
            shard.start_replication();
        }
        shard.start_group_ticks();
        shard.start_txn_ticks();
        for channel in incoming {
            let shard = Rc::clone(&shard);
            crate::server::spawn(async move {
                while let Some(message) = channel.recv().await {
                    let queued = crate::metrics::Queued::enter(crate::metrics::Queue::Mesh);
                    // Snapshots and replication frames apply in order;
                    // everything else runs as its own task so one slow
                    // append does not hold up the rest.
                    if let ShardMessage::Snapshot { .. } | ShardMessage::Data { .. } = message {
                        shard.on_message(message).await;
                        drop(queued);
                    } else {
                        let shard = Rc::clone(&shard);
                        crate::server::spawn(async move {
                            shard.on_message(message).await;
                            drop(queued);
                        });
                    }
                }
            });
        }
        if id == 0 {
            let state = shard.metadata();
            shard.install(Arc::clone(&state)).await;
            shard.broadcast(state).await;
            if let Some(config) = shard.settings.cluster.clone() {
                let cluster = crate::cluster::start(&shard, config, data_dir)
                    .await
                    .map_err(StartError::Cluster)?;
                *shard.cluster.borrow_mut() = Some(cluster);
            }
        }
        // Serve nothing before shard 0's state is here: until then this
        // shard knows no topic, and would answer (or auto-create) wrongly.
        loop {
            let installed = shard.installed.notified();
            let mut installed = std::pin::pin!(installed);
            installed.as_mut().enable();
            if shard.installed_once.get() {
                break;
            }
            installed.await;
        }
        Ok(shard)
    }

    pub fn id(&self) -> u32 {
        self.mesh.shard()
    }

    pub fn shards(&self) -> u32 {
        self.mesh.shards()
    }

    /// The engine config of `topic` in `metadata`: built-in defaults, the
    /// static broker defaults, the dynamic broker defaults, the topic's own.
    pub fn log_config(&self, metadata: &ClusterMetadata, topic: &str) -> LogConfig {
        reconcile::log_config(
            &self.settings.topic_defaults,
            self.settings.producer_id_expiration_ms,
            metadata,
            topic,
        )
    }

    /// A producer id never handed out before, on any shard or in any
    /// earlier run: from this shard's block, reserving the next block in
    /// the metadata log when it is used up.
    pub async fn new_producer_id(&self) -> Result<i64, CommandError> {
        let _reserving = self.reserving.lock().await;
        let (next, end) = self.producer_ids.get();
        if next < end {
            self.producer_ids.set((next + 1, end));
            return Ok(next);
        }
        let count = PRODUCER_ID_BLOCK;
        let first = if self.in_cluster() {
            // Other brokers reserve blocks too: the controller's answer
            // names this one.
            let command = Command::AllocateProducerIds { count };
            let request = replication::quorum::ControllerRequest::Admin {
                command,
                topic_id: TopicId([0; 16]),
            };
            let committed = self
                .ask_controller(request)
                .await
                .map_err(CommandError::Controller)?;
            let (first, granted) = committed.producer_ids.ok_or_else(|| {
                CommandError::Controller(replication::quorum::wire::RemoteError {
                    code: crate::handlers::errors::UNKNOWN_SERVER_ERROR,
                    message: "the controller reserved no producer ids".into(),
                    leader: None,
                })
            })?;
            if granted != count {
                tracing::warn!(
                    count,
                    granted,
                    "the controller reserved another count of producer ids"
                );
            }
            first..first + granted
        } else {
            let state = self.execute(Command::AllocateProducerIds { count }).await?;
            // The state right after the reservation: the block ends at its next.
            let end = state.next_producer_id();
            end - count..end
        };
        self.producer_ids.set((first.start + 1, first.end));
        Ok(first.start)
    }

    /// The current metadata snapshot.
    pub fn metadata(&self) -> Arc<ClusterMetadata> {
        Arc::clone(&self.metadata.borrow())
    }

    /// How many metadata records built the state this shard serves (no
    /// clone of the state: the count travels with routed requests).
    pub(crate) fn metadata_applied(&self) -> u64 {
        self.metadata.borrow().applied()
    }

    /// Runs a metadata command on the writer and returns the state after it.
    pub async fn execute(&self, command: Command) -> Result<Arc<ClusterMetadata>, CommandError> {
        self.execute_assigned(command, None).await
    }

    /// [`execute`](Self::execute), the partitions it creates placed on
    /// these replicas (one list each, in order) instead of by the
    /// controller. A broker alone has checked they name it alone.
    pub async fn execute_assigned(
        &self,
        command: Command,
        assignments: Option<Vec<Vec<i32>>>,
    ) -> Result<Arc<ClusterMetadata>, CommandError> {
        let state = if self.id() == 0 {
            self.execute_here(command, assignments).await?
        } else {
            let (reply, answer) = oneshot::channel();
            let message = ShardMessage::Command {
                command,
                assignments,
                reply,
            };
            if self.mesh.send(0, message).await.is_err() {
                return Err(CommandError::WriterGone);
            }
            answer.await.map_err(|_| CommandError::WriterGone)??
        };
        self.install(Arc::clone(&state)).await;
        Ok(state)
    }

    /// Runs `command`, or with `validate_only` only checks it against the
    /// current state (Kafka's validate_only); returns the state after it.
    pub async fn execute_or_validate(
        &self,
        command: Command,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Result<Arc<ClusterMetadata>, CommandError> {
        if validate_only {
            let state = self.metadata();
            // Any non-zero id: a checked create never takes it.
            state.decide(command, TopicId([0xff; 16]))?;
            return Ok(state);
        }
        self.execute_assigned(command, assignments).await
    }

    /// On shard 0: make the change durable, then tell every shard.
    async fn execute_here(
        &self,
        command: Command,
        assignments: Option<Vec<Vec<i32>>>,
    ) -> Result<Arc<ClusterMetadata>, CommandError> {
        use replication::quorum::ControllerRequest;
        let cluster = self.cluster.borrow().clone();
        if let Some(cluster) = cluster {
            // The controller decides; the driver installs what commits.
            let topic_id = TopicId(*uuid::Uuid::new_v4().as_bytes());
            let request = match assignments {
                Some(assignments) => ControllerRequest::AdminAssigned {
                    command,
                    topic_id,
                    assignments,
                },
                None => ControllerRequest::Admin { command, topic_id },
            };
            cluster
                .request(request)
                .await
                .map_err(CommandError::Controller)?;
            return Ok(self.metadata());
        }
        let Some(store) = &self.store else {
            return Err(CommandError::WriterGone);
        };
        let mut store = store.lock().await;
        let mut result = store
            .execute(command.clone(), TopicId(*uuid::Uuid::new_v4().as_bytes()))
            .await;
        if let Err(StoreError::Refused(MetadataError::TopicIdInUse)) = result {
            result = store
                .execute(command, TopicId(*uuid::Uuid::new_v4().as_bytes()))
                .await;
        }
        result.map_err(|e| match e {
            StoreError::Refused(refused) => CommandError::Refused(refused),
            other => CommandError::Store(other),
        })?;
        let state = Arc::new(store.state().clone());
        // The store stays locked until every shard serves the new state, so
        // whoever runs the next command (and is refused, say, because the
        // topic now exists) finds this change installed on its shard.
        self.install(Arc::clone(&state)).await;
        self.broadcast(Arc::clone(&state)).await;
        drop(store);
        Ok(state)
    }

    /// Controlled shutdown of a cluster member (shard 0): the controller
    /// fences it before its partitions close. Nothing when it runs alone.
    pub async fn leave_cluster(&self) {
        let cluster = self.cluster.borrow().clone();
        if let Some(cluster) = cluster {
            cluster.leave(self).await;
        }
    }

    /// Serves `state` here and on every shard (a cluster's committed
    /// metadata, from the voter's driver).
    pub(crate) async fn install_and_broadcast(&self, state: Arc<ClusterMetadata>) {
        self.install(Arc::clone(&state)).await;
        self.broadcast(state).await;
    }

    /// Sends the new state to every other shard and waits until each serves
    /// it, so a client told "done" finds the change on whichever shard its
    /// next connection lands.
    async fn broadcast(&self, state: Arc<ClusterMetadata>) {
        let mut acks = Vec::new();
        for to in (0..self.shards()).filter(|&to| to != self.id()) {
            let (ack, done) = oneshot::channel();
            let message = ShardMessage::Snapshot {
                state: Arc::clone(&state),
                ack,
            };
            if self.mesh.send(to, message).await.is_err() {
                tracing::warn!(to, "shard gone; metadata not delivered");
                continue;
            }
            acks.push(done);
        }
        for done in acks {
            let _ = done.await;
        }
    }

    /// Waits (at most [`CATCH_UP_WAIT`]) until this shard serves metadata
    /// at least as new as `seen`, the state another shard routed a request
    /// here by. That state is on its way ([`broadcast`](Self::broadcast)
    /// reaches every shard, after the sender's shard created its own
    /// partitions), but a request can overtake it: the group coordinator of
    /// a just-created `__consumer_offsets` partition would not find its
    /// partition yet and answer COORDINATOR_NOT_AVAILABLE, which
    /// FindCoordinator had just denied; a produce to a just-created topic,
    /// UNKNOWN_TOPIC_OR_PARTITION.
    async fn catch_up(&self, seen: u64) {
        if self.metadata_applied() >= seen {
            return;
        }
        let caught_up = async {
            loop {
                let installed = self.installed.notified();
                let mut installed = std::pin::pin!(installed);
                installed.as_mut().enable();
                if self.metadata_applied() >= seen {
                    return;
                }
                installed.await;
            }
        };
        let (caught_up, late) = (
            std::pin::pin!(caught_up),
            std::pin::pin!(rt::sleep(CATCH_UP_WAIT)),
        );
        let waited = futures::future::select(caught_up, late).await;
        if let futures::future::Either::Right(_) = waited {
            tracing::warn!(
                shard = self.id(),
                seen,
                applied = self.metadata_applied(),
                "the metadata a request was routed by did not come in time; served by older metadata"
            );
        }
    }

    async fn on_message(&self, message: ShardMessage) {
        match message {
            ShardMessage::Command {
                command,
                assignments,
                reply,
            } => {
                let _ = reply.send(self.execute_here(command, assignments).await);
            }
            ShardMessage::WaitForAppends {
                partitions,
                deadline,
                seen,
                mut reply,
            } => {
                self.catch_up(seen).await;
                // A long poll ends early when its fetch is answered or gone.
                let wait = std::pin::pin!(self.wait_here(partitions));
                let late = rt::sleep(deadline.saturating_duration_since(std::time::Instant::now()));
                let late = std::pin::pin!(late);
                let abandoned = std::pin::pin!(reply.cancellation());
                let waited = futures::future::select(wait, late);
                if let futures::future::Either::Left(_) =
                    futures::future::select(waited, abandoned).await
                {
                    let _ = reply.send(());
                }
            }
            ShardMessage::Partitions {
                topic,
                ops,
                seen,
                reply,
            } => {
                self.catch_up(seen).await;
                let _ = reply.send(self.partitions_local(&topic, ops).await);
            }
            ShardMessage::Partition {
                tp,
                seen,
                op,
                reply,
            } => {
                self.catch_up(seen).await;
                let _ = reply.send(self.partition_local(&tp, op).await);
            }
            ShardMessage::Group {
                group_id,
                partition,
                seen,
                op,
                reply,
            } => {
                self.catch_up(seen).await;
                let _ = reply.send(self.group_local(group_id, partition, op).await);
            }
            ShardMessage::Txn {
                transactional_id,
                partition,
                seen,
                op,
                reply,
            } => {
                self.catch_up(seen).await;
                let _ = reply.send(self.txn_local(transactional_id, partition, op).await);
            }
            ShardMessage::ListTransactions { reply } => {
                let _ = reply.send(self.list_local_transactions().await);
            }
            ShardMessage::ListGroups { reply } => {
                let _ = reply.send(self.list_local_groups().await);
            }
            ShardMessage::Metrics { reply } => {
                let _ = reply.send(self.local_metrics());
            }
            ShardMessage::HttpConsume {
                consume,
                seen,
                reply,
            } => {
                self.catch_up(seen).await;
                let _ = reply.send(crate::http::consume_here(self, consume).await);
            }
            ShardMessage::Snapshot { state, ack } => {
                self.install(state).await;
                let _ = ack.send(());
            }
            ShardMessage::DataLink { from, fd } => self.adopt_data_link(from, fd),
            ShardMessage::Data { from, frame } => {
                // Boxed: a frame for another shard goes back over the mesh.
                let handled: futures::future::LocalBoxFuture<'_, ()> =
                    Box::pin(self.on_data_frame(from, frame));
                handled.await;
            }
            ShardMessage::Controller { request, reply } => {
                let _ = reply.send(self.ask_controller(request).await);
            }
        }
    }

    /// This shard's partition `tp`, once a reconciliation under way has
    /// created it: metadata is installed (and seen by requests) before the
    /// partitions it adds exist, so a coordinator that finds its internal
    /// topic in the metadata may come before its partition does.
    pub(super) async fn created_partition(&self, tp: &TopicPartition) -> Option<Rc<Log>> {
        if let Some(log) = self.partitions.get(tp) {
            return Some(log);
        }
        drop(self.reconciling.lock().await);
        self.partitions.get(tp)
    }

    /// Takes a newer snapshot and brings this shard's partitions in line:
    /// partitions of topics deleted since the previous snapshot are deleted.
    async fn install(&self, state: Arc<ClusterMetadata>) {
        let previous = {
            let mut current = self.metadata.borrow_mut();
            if state.applied() < current.applied() {
                return;
            }
            tracing::debug!(
                shard = self.id(),
                applied = state.applied(),
                "metadata installed"
            );
            std::mem::replace(&mut *current, state)
        };
        let _one_at_a_time = self.reconciling.lock().await;
        // A cluster member starts from an empty state until it caught up
        // with the metadata log (which names it): its partitions on disk
        // wait for that, unjudged. A stopping shard's partitions are
        // closed: metadata arriving meanwhile (its own controlled shutdown)
        // must not recreate them.
        let current = self.metadata();
        let caught_up = !self.in_cluster() || current.broker(self.node.node_id).is_some();
        if caught_up && !self.partitions.is_closed() {
            reconcile::partitions(self, &previous, &current).await;
        }
        if self.in_cluster() {
            self.unload_moved_groups();
            self.unload_moved_txns();
        }
        self.installed_once.set(true);
        self.installed.notify_waiters();
    }
}

/// Why a shard could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("shard mesh: {0}")]
    Mesh(#[source] std::io::Error),
    #[error(transparent)]
    Engine(#[from] engine::Error),
    #[error("metadata: {0}")]
    Metadata(#[source] StoreError<engine::Error>),
    #[error("cluster: {0}")]
    Cluster(#[source] crate::cluster::ClusterStartError),
}

fn meta_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("meta")
}
