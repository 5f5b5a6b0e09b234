//! Group members over HTTP: `GET|POST /consume/TOPIC/GROUP/INSTANCE`
//! (`DELETE` leaves). Each instance is a member of GROUP by KIP-848's
//! consumer group protocol, beside the Kafka clients' members of the same
//! group (one coordinator, the server-side assignor). The first consume
//! joins, subscribed to TOPIC; every consume then
//! 1. commits the positions the instance's earlier consumes returned
//!    (Kafka's auto commit: what a consume returned is committed by the
//!    next one, or by the instance's own heartbeat within its interval),
//! 2. heartbeats (a revoked partition's position was committed first),
//! 3. reads the assigned partitions from their positions (the committed
//!    offset, else `reset`: `latest` as Kafka's default, or `earliest`),
//!    waiting up to `timeout` ms while nothing is there.
//!
//! Instances live on their group's coordinator shard. A task there
//! heartbeats for them between consumes (a rebalance does not wait for
//! their next consume) and makes an instance not asked for [`IDLE`]
//! leave its group, committing first.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::{Duration, Instant};

use engine::TopicPartition;

use super::HttpError;
use super::consume::{self, Records};
use crate::broker::Shard;
use crate::broker::groups::{GroupAnswer, GroupOp};
use crate::group::consumer::{Assignment, Heartbeat, LEAVE_EPOCH};
use crate::group::{CommittedOffset, OffsetKey};
use crate::handlers::errors::{FENCED_MEMBER_EPOCH, NONE, OFFSET_OUT_OF_RANGE, UNKNOWN_MEMBER_ID};

/// An instance not asked for this long leaves its group.
const IDLE: Duration = Duration::from_secs(60);
/// How long a member may take to revoke partitions (it revokes at once).
const REBALANCE_TIMEOUT_MS: i32 = 30_000;
/// How often the instances' task looks for heartbeats due.
const SWEEP: Duration = Duration::from_millis(250);
/// While nothing is assigned a consume asks again this often.
const UNASSIGNED_RETRY: Duration = Duration::from_millis(200);
/// How often a consume waiting for records reads the partitions another
/// broker leads again.
const REMOTE_POLL: Duration = Duration::from_millis(100);
/// A wait that ends sooner than this is followed by a pause this long.
const NO_SPIN: Duration = Duration::from_millis(10);
/// The client id the coordinator shows for HTTP members.
const CLIENT_ID: &str = "shardlog-http";

/// Where a new instance starts in a partition its group committed nothing
/// for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reset {
    Earliest,
    Latest,
}

/// One consume (or leave) of an instance.
#[derive(Debug)]
pub struct ConsumeCall {
    pub topic: String,
    pub group: String,
    pub instance: String,
    pub timeout: Duration,
    pub max_bytes: usize,
    pub reset: Reset,
    /// DELETE: commit and leave the group.
    pub leave: bool,
    pub client_host: String,
}

/// Records as JSON, or the error.
pub type ConsumeAnswer = Result<serde_json::Value, HttpError>;

/// An instance, shared by its consumes and the heartbeat task.
type Shared = Rc<tokio::sync::Mutex<Instance>>;

/// The instances of the groups this shard coordinates, by (group, name).
#[derive(Debug, Default)]
pub struct Members {
    instances: RefCell<HashMap<(String, String), Shared>>,
    /// Whether the instances' task runs.
    sweeping: Cell<bool>,
}

#[derive(Debug)]
struct Instance {
    group: String,
    topic: String,
    client_host: String,
    reset: Reset,
    member_id: String,
    /// 0 until joined (and after a fence).
    epoch: i32,
    /// Whether the subscription changed since the last heartbeat.
    resubscribe: bool,
    assigned: Assignment,
    /// The next offset to return, per partition of `topic` assigned.
    positions: BTreeMap<i32, i64>,
    /// What this instance committed last, per partition.
    committed: BTreeMap<i32, i64>,
    last_used: Instant,
    last_heartbeat: Instant,
    heartbeat_interval: Duration,
    /// Left its group; a consume that finds it makes a new one.
    gone: bool,
}

impl Instance {
    fn new(call: &ConsumeCall) -> Instance {
        let now = Instant::now();
        Instance {
            group: call.group.clone(),
            topic: call.topic.clone(),
            client_host: call.client_host.clone(),
            reset: call.reset,
            // Unique per instance's life: its name and when it began.
            member_id: format!(
                "{CLIENT_ID}-{}-{:x}",
                call.instance,
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
            ),
            epoch: 0,
            resubscribe: true,
            assigned: Assignment::new(),
            positions: BTreeMap::new(),
            committed: BTreeMap::new(),
            last_used: now,
            last_heartbeat: now,
            heartbeat_interval: Duration::from_secs(5),
            gone: false,
        }
    }

    /// Fenced or forgotten by the coordinator: joins again, holding nothing.
    fn rejoin(&mut self) {
        self.epoch = 0;
        self.resubscribe = true;
        self.assigned.clear();
        self.positions.clear();
        self.committed.clear();
    }

    /// The partitions of its topic it is assigned, with the topic's id in
    /// `shard`'s metadata.
    fn partitions(&self, shard: &Shard) -> Vec<i32> {
        let metadata = shard.metadata();
        let Some(topic) = metadata.topic(&self.topic) else {
            return Vec::new();
        };
        self.assigned
            .get(&topic.topic_id.0)
            .map(|p| p.iter().copied().collect())
            .unwrap_or_default()
    }
}

/// On the group's coordinator shard: one consume (or leave) of an instance.
pub(crate) async fn consume_here(shard: &Shard, call: ConsumeCall) -> ConsumeAnswer {
    let key = (call.group.clone(), call.instance.clone());
    loop {
        let existing = shard.http_members.instances.borrow().get(&key).cloned();
        let instance = match existing {
            Some(instance) => instance,
            None if call.leave => {
                return Err(HttpError::new(
                    hyper::StatusCode::NOT_FOUND,
                    "UNKNOWN_MEMBER_ID",
                    format!("no instance {} in group {}", call.instance, call.group),
                ));
            }
            None => {
                let instance = Rc::new(tokio::sync::Mutex::new(Instance::new(&call)));
                shard
                    .http_members
                    .instances
                    .borrow_mut()
                    .insert(key.clone(), Rc::clone(&instance));
                start_sweeper(shard);
                instance
            }
        };
        let mut held = instance.lock().await;
        if held.gone {
            // Left meanwhile (idle, or another DELETE): a new instance.
            continue;
        }
        held.last_used = Instant::now();
        if call.leave {
            leave(shard, &mut held).await;
            shard.http_members.instances.borrow_mut().remove(&key);
            return Ok(
                serde_json::json!({"group": call.group, "instance": call.instance, "left": true}),
            );
        }
        if held.topic != call.topic {
            // Its positions are the old topic's: committed, then forgotten.
            commit(shard, &mut held).await;
            held.positions.clear();
            held.committed.clear();
            held.topic.clone_from(&call.topic);
            held.resubscribe = true;
        }
        held.reset = call.reset;
        return consume(shard, &mut held, &call).await;
    }
}

/// Commit, heartbeat, read; waits while there is nothing.
async fn consume(shard: &Shard, instance: &mut Instance, call: &ConsumeCall) -> ConsumeAnswer {
    let deadline = Instant::now() + call.timeout;
    loop {
        sync(shard, instance).await?;
        let partitions = instance.partitions(shard);
        position(shard, instance, &partitions).await?;
        let (records, moved) = read(shard, instance, &partitions, call.max_bytes).await?;
        let now = Instant::now();
        if !records.is_empty() || now >= deadline {
            // Returned: the positions move past them (committed next time).
            instance.positions.extend(moved);
            return Ok(serde_json::Value::Array(records));
        }
        instance.positions.extend(moved);
        let heartbeat_due = instance.last_heartbeat + instance.heartbeat_interval;
        let until = if partitions.is_empty() {
            deadline.min(now + UNASSIGNED_RETRY)
        } else {
            deadline.min(heartbeat_due)
        };
        let waited = Instant::now();
        wait_for_records(shard, instance, &partitions, until).await;
        if waited.elapsed() < NO_SPIN {
            // Records there but none to return (an open transaction holds
            // the last stable offset back): not a busy loop meanwhile.
            engine::rt::sleep(NO_SPIN.min(until.saturating_duration_since(Instant::now()))).await;
        }
    }
}

/// Commits the positions not committed yet (errors are logged: the
/// records come again, as after a failed auto commit).
async fn commit(shard: &Shard, instance: &mut Instance) {
    let pending: Vec<(i32, i64)> = instance
        .positions
        .iter()
        .filter(|(p, offset)| instance.committed.get(p) != Some(offset))
        .map(|(&p, &offset)| (p, offset))
        .collect();
    if pending.is_empty() || instance.epoch <= 0 {
        return;
    }
    let now = engine::rt::wall_clock_ms();
    let offsets = pending
        .iter()
        .map(|&(partition, offset)| {
            let key = OffsetKey {
                topic: instance.topic.clone(),
                partition,
            };
            let value = CommittedOffset {
                offset,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp_ms: now,
            };
            (key, value)
        })
        .collect();
    let op = GroupOp::Commit {
        member_id: instance.member_id.clone(),
        instance_id: None,
        generation: instance.epoch,
        version: 9,
        offsets,
    };
    let GroupAnswer::Codes(codes) = shard.group_call(&instance.group, op).await else {
        return;
    };
    for (&(partition, offset), code) in pending.iter().zip(codes) {
        if code == NONE {
            instance.committed.insert(partition, offset);
        } else {
            tracing::info!(group = %instance.group, member = %instance.member_id, topic = %instance.topic,
                partition, offset, code, "an HTTP member's commit failed");
        }
    }
}

/// Commits, then heartbeats; takes the assignment the coordinator sends.
/// A member the coordinator fenced or forgot joins again at once.
async fn sync(shard: &Shard, instance: &mut Instance) -> Result<(), HttpError> {
    commit(shard, instance).await;
    for attempt in 0..2 {
        let joining = instance.epoch == 0;
        let heartbeat = Heartbeat {
            version: 1,
            member_id: instance.member_id.clone(),
            member_epoch: instance.epoch,
            instance_id: None,
            rack_id: None,
            rebalance_timeout_ms: if joining { REBALANCE_TIMEOUT_MS } else { -1 },
            subscribed_topic_names: instance.resubscribe.then(|| vec![instance.topic.clone()]),
            subscribed_topic_regex: None,
            server_assignor: None,
            owned: Some(instance.assigned.clone()),
            client_id: CLIENT_ID.to_string(),
            client_host: instance.client_host.clone(),
        };
        let op = GroupOp::ConsumerHeartbeat(heartbeat);
        let GroupAnswer::ConsumerHeartbeat(reply) = shard.group_call(&instance.group, op).await
        else {
            return Err(HttpError::from_kafka(
                -1,
                format!("group {}", instance.group),
            ));
        };
        instance.last_heartbeat = Instant::now();
        match reply.error {
            NONE => {
                instance.member_id = reply.member_id;
                instance.epoch = reply.member_epoch;
                instance.resubscribe = false;
                if let Ok(ms) = u64::try_from(reply.heartbeat_interval_ms)
                    && ms > 0
                {
                    instance.heartbeat_interval = Duration::from_millis(ms);
                }
                if let Some(assigned) = reply.assignment {
                    instance.assigned = assigned;
                    let partitions = instance.partitions(shard);
                    instance.positions.retain(|p, _| partitions.contains(p));
                    instance.committed.retain(|p, _| partitions.contains(p));
                }
                return Ok(());
            }
            UNKNOWN_MEMBER_ID | FENCED_MEMBER_EPOCH if attempt == 0 => {
                tracing::info!(group = %instance.group, member = %instance.member_id, code = reply.error,
                    "an HTTP member joins its group again");
                instance.rejoin();
            }
            code => {
                let context = format!(
                    "group {}: {}",
                    instance.group,
                    reply.message.unwrap_or_default()
                );
                return Err(HttpError::from_kafka(code, context));
            }
        }
    }
    Err(HttpError::from_kafka(
        FENCED_MEMBER_EPOCH,
        format!("group {}", instance.group),
    ))
}

/// Commits and leaves the group.
async fn leave(shard: &Shard, instance: &mut Instance) {
    commit(shard, instance).await;
    if instance.epoch > 0 {
        let heartbeat = Heartbeat {
            version: 1,
            member_id: instance.member_id.clone(),
            member_epoch: LEAVE_EPOCH,
            rebalance_timeout_ms: -1,
            client_id: CLIENT_ID.to_string(),
            client_host: instance.client_host.clone(),
            ..Heartbeat::default()
        };
        let _ = shard
            .group_call(&instance.group, GroupOp::ConsumerHeartbeat(heartbeat))
            .await;
    }
    instance.gone = true;
}

/// Positions for the assigned partitions that have none: the group's
/// committed offset, else where `reset` says.
async fn position(
    shard: &Shard,
    instance: &mut Instance,
    partitions: &[i32],
) -> Result<(), HttpError> {
    let missing: Vec<i32> = partitions
        .iter()
        .copied()
        .filter(|p| !instance.positions.contains_key(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let keys = missing
        .iter()
        .map(|&partition| OffsetKey {
            topic: instance.topic.clone(),
            partition,
        })
        .collect();
    let op = GroupOp::Fetch {
        keys: Some(keys),
        require_stable: true,
        member: Some((instance.member_id.clone(), instance.epoch)),
    };
    let found = match shard.group_call(&instance.group, op).await {
        GroupAnswer::Offsets(found) => found,
        GroupAnswer::Codes(codes) => {
            let code = codes.first().copied().unwrap_or(-1);
            return Err(HttpError::from_kafka(
                code,
                format!("offsets of {}", instance.group),
            ));
        }
        _ => {
            return Err(HttpError::from_kafka(
                -1,
                format!("offsets of {}", instance.group),
            ));
        }
    };
    for (key, value, code) in found {
        if code != NONE {
            return Err(HttpError::from_kafka(
                code,
                format!("offsets of {}", instance.group),
            ));
        }
        let offset = match value {
            Some(committed) if committed.offset >= 0 => {
                instance.committed.insert(key.partition, committed.offset);
                committed.offset
            }
            _ => reset_offset(shard, instance, key.partition).await?,
        };
        instance.positions.insert(key.partition, offset);
    }
    Ok(())
}

async fn reset_offset(
    shard: &Shard,
    instance: &Instance,
    partition: i32,
) -> Result<i64, HttpError> {
    let timestamp = match instance.reset {
        Reset::Earliest => -2,
        Reset::Latest => -1,
    };
    consume::list_offset(
        shard,
        TopicPartition::new(&instance.topic, partition),
        timestamp,
    )
    .await
}

/// Reads the assigned partitions from their positions, about `max_bytes`
/// in all: the records and where each partition read stops.
async fn read(
    shard: &Shard,
    instance: &mut Instance,
    partitions: &[i32],
    max_bytes: usize,
) -> Result<(Vec<serde_json::Value>, Vec<(i32, i64)>), HttpError> {
    let mut records = Vec::new();
    let mut moved = Vec::new();
    let mut budget = max_bytes;
    for &partition in partitions {
        let Some(&offset) = instance.positions.get(&partition) else {
            continue;
        };
        let tp = TopicPartition::new(&instance.topic, partition);
        match consume::read_records(shard, tp, offset, budget.max(1)).await {
            Ok(Records {
                records: mut read,
                next,
            }) => {
                let bytes: usize = read.iter().map(|r| r.to_string().len()).sum();
                budget = budget.saturating_sub(bytes);
                records.append(&mut read);
                moved.push((partition, next));
            }
            Err(e) if e.code == Some(OFFSET_OUT_OF_RANGE) => {
                let offset = reset_offset(shard, instance, partition).await?;
                tracing::info!(group = %instance.group, topic = %instance.topic, partition, offset,
                    "an HTTP member's position was out of range: reset");
                moved.push((partition, offset));
            }
            Err(e) => return Err(e),
        }
        if budget == 0 {
            break;
        }
    }
    Ok((records, moved))
}

/// Until a record comes to one of `partitions` past its position, or
/// `until`; partitions another broker leads are read again every
/// [`REMOTE_POLL`].
async fn wait_for_records(shard: &Shard, instance: &Instance, partitions: &[i32], until: Instant) {
    let (remote, local): (Vec<i32>, Vec<i32>) = partitions
        .iter()
        .partition(|&&p| shard.led_elsewhere(&instance.topic, p).is_some());
    let until = if remote.is_empty() {
        until
    } else {
        until.min(Instant::now() + REMOTE_POLL)
    };
    let waits = local
        .iter()
        .filter_map(|&partition| {
            let seen = *instance.positions.get(&partition)?;
            Some((TopicPartition::new(&instance.topic, partition), seen))
        })
        .collect();
    shard.wait_for_appends(waits, until).await;
}

/// Starts the task that heartbeats for this shard's instances between
/// their consumes and makes idle ones leave; it ends with the last.
fn start_sweeper(shard: &Shard) {
    if shard.http_members.sweeping.replace(true) {
        return;
    }
    let Some(owner) = shard.me() else {
        shard.http_members.sweeping.set(false);
        return;
    };
    let shard = Rc::downgrade(&owner);
    drop(owner);
    crate::server::spawn(async move {
        loop {
            engine::rt::sleep(SWEEP).await;
            let Some(shard) = shard.upgrade() else {
                return;
            };
            let instances: Vec<_> = shard
                .http_members
                .instances
                .borrow()
                .iter()
                .map(|(key, instance)| (key.clone(), Rc::clone(instance)))
                .collect();
            if instances.is_empty() {
                shard.http_members.sweeping.set(false);
                return;
            }
            for (key, instance) in instances {
                // Busy in a consume: that consume heartbeats.
                let Ok(mut held) = instance.try_lock() else {
                    continue;
                };
                if held.gone {
                    continue;
                }
                if held.last_used.elapsed() >= IDLE {
                    tracing::info!(group = %key.0, instance = %key.1, "an idle HTTP member leaves its group");
                    leave(&shard, &mut held).await;
                    shard.http_members.instances.borrow_mut().remove(&key);
                } else if held.last_heartbeat.elapsed() >= held.heartbeat_interval
                    && let Err(e) = sync(&shard, &mut held).await
                {
                    tracing::info!(group = %key.0, instance = %key.1, error = %e.message,
                        "an HTTP member's heartbeat failed");
                }
            }
        }
    });
}
