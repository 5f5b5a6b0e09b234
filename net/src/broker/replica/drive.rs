//! Performing what the roles ask: pushes read from the log and sent,
//! truncations, acknowledgements and questions sent, high watermarks set
//! and acks=all appends answered, ISR changes asked of the controller.

use std::rc::Rc;

use engine::batch::{BatchHeader, HEADER_BYTES};
use engine::{Offset, Rewrite, TopicPartition};
use replication::isr::wire::{DataFrame, PUSH_RECORDS_MAX, PartitionKey, encode, encode_push_head};
use replication::isr::{FollowerAction, LeaderAction};
use replication::quorum::ControllerRequest;

use super::{Entry, Leading, Role};
use crate::broker::Shard;
use crate::handlers::errors::{NONE, NOT_ENOUGH_REPLICAS_AFTER_APPEND};

/// How long a push with nothing readable yet waits for the log to move.
const PUSH_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

/// An action taken out of a role, performed outside its borrow.
enum Action {
    Leader(LeaderAction),
    Follower(FollowerAction),
}

fn key(tp: &TopicPartition) -> PartitionKey {
    PartitionKey {
        topic: tp.topic.clone(),
        partition: tp.partition,
    }
}

/// The answer to an acks=all append the high watermark passed: NONE, or
/// NOT_ENOUGH_REPLICAS_AFTER_APPEND when the ISR is below
/// `min.insync.replicas`.
pub(super) fn in_sync_code(leading: &Leading, min_insync: u32) -> i16 {
    let in_sync = u32::try_from(leading.state.isr().len()).unwrap_or(u32::MAX);
    if in_sync >= min_insync {
        NONE
    } else {
        NOT_ENOUGH_REPLICAS_AFTER_APPEND
    }
}

/// The high watermark reached `hw`: acks=all appends that end at or below
/// it are answered (NOT_ENOUGH_REPLICAS_AFTER_APPEND when the ISR shrank
/// below `min.insync.replicas` meanwhile).
fn answer_waiting(leading: &mut Leading, hw: i64, min_insync: u32) {
    let code = in_sync_code(leading, min_insync);
    let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut leading.waiting)
        .into_iter()
        .partition(|(end, _)| *end <= hw);
    leading.waiting = waiting;
    for (_, answer) in done {
        let _ = answer.send(code);
    }
}

impl Shard {
    /// Performs every action the role of `tp` has, until it has none.
    pub(super) fn drive(&self, tp: &TopicPartition) {
        loop {
            let Some((id, actions)) = self.take_actions(tp) else {
                return;
            };
            if actions.is_empty() {
                return;
            }
            for action in actions {
                match action {
                    Action::Leader(action) => self.leader_action(tp, id, action),
                    Action::Follower(action) => self.follower_action(tp, id, action),
                }
            }
        }
    }

    /// The role's actions; high watermarks are applied here, under the
    /// borrow (they answer the waiting appends).
    fn take_actions(&self, tp: &TopicPartition) -> Option<(u64, Vec<Action>)> {
        let log = self.partitions.get(tp);
        let mut roles = self.replicas.roles.borrow_mut();
        let Entry { id, role } = roles.get_mut(tp)?;
        let actions = match role {
            Role::Leading(leading) => {
                let mut out = Vec::new();
                for action in leading.state.poll() {
                    match action {
                        LeaderAction::HighWatermark(hw) => {
                            if let Some(log) = &log {
                                log.set_high_watermark(Some(Offset(hw)));
                                answer_waiting(leading, hw, log.min_insync_replicas());
                            }
                        }
                        other => out.push(Action::Leader(other)),
                    }
                }
                out
            }
            Role::Following(following) => following
                .state
                .poll()
                .into_iter()
                .map(Action::Follower)
                .collect(),
        };
        Some((*id, actions))
    }

    fn leader_action(&self, tp: &TopicPartition, id: u64, action: LeaderAction) {
        match action {
            LeaderAction::Push {
                to,
                from,
                end,
                high_watermark,
            } if end == from => {
                let frame =
                    encode_push_head(&key(tp), self.role_epoch(tp), from, end, high_watermark, 0);
                self.send_data(to, frame);
            }
            LeaderAction::Push {
                to,
                from,
                end,
                high_watermark,
            } => {
                if let Some(shard) = self.me() {
                    let tp = tp.clone();
                    crate::server::spawn(async move {
                        shard.push(tp, id, to, from, end, high_watermark).await;
                    });
                }
            }
            LeaderAction::AlterIsr {
                isr,
                leader_epoch,
                partition_epoch,
            } => {
                if let Some(shard) = self.me() {
                    let tp = tp.clone();
                    crate::server::spawn(async move {
                        shard
                            .alter_isr(tp, id, isr, leader_epoch, partition_epoch)
                            .await;
                    });
                }
            }
            LeaderAction::HighWatermark(_) => {}
        }
    }

    fn follower_action(&self, tp: &TopicPartition, id: u64, action: FollowerAction) {
        let epoch = self.role_epoch(tp);
        match action {
            FollowerAction::AskEpochEnd {
                leader,
                epoch: asked,
            } => {
                let frame = DataFrame::AskEpochEnd {
                    key: key(tp),
                    leader_epoch: epoch,
                    epoch: asked,
                };
                self.send_data(leader, encode(&frame));
            }
            FollowerAction::Acknowledge {
                leader,
                leader_epoch,
                session,
                log_end,
                durable,
            } => {
                let frame = DataFrame::Ack {
                    key: key(tp),
                    leader_epoch,
                    session,
                    log_end,
                    durable,
                };
                self.send_data(leader, encode(&frame));
            }
            FollowerAction::Truncate { offset } => {
                self.spawn_rewrite(tp, id, Rewrite::CutAt, offset)
            }
            FollowerAction::StartOver { offset } => {
                self.spawn_rewrite(tp, id, Rewrite::StartOver, offset);
            }
            FollowerAction::HighWatermark(hw) => {
                if let Some(log) = self.partitions.get(tp) {
                    log.set_high_watermark(Some(Offset(hw)));
                }
            }
            // Done by the push's handler, which holds the records.
            FollowerAction::Append => {}
        }
    }

    /// The leader epoch of the role of `tp` (-1 without one).
    pub(super) fn role_epoch(&self, tp: &TopicPartition) -> i32 {
        match self.replicas.roles.borrow().get(tp).map(|e| &e.role) {
            Some(Role::Leading(l)) => l.state.leader_epoch(),
            Some(Role::Following(f)) => f.state.leader_epoch(),
            None => -1,
        }
    }

    /// Runs `f` on the leader state of `tp` if role `id` still leads it.
    fn with_leader(&self, tp: &TopicPartition, id: u64, f: impl FnOnce(&mut Leading)) {
        let mut roles = self.replicas.roles.borrow_mut();
        if let Some(Entry {
            id: current,
            role: Role::Leading(leading),
        }) = roles.get_mut(tp)
            && *current == id
        {
            f(leading);
        }
    }

    /// Sends `to` the batches from `from` (whole, up to `end` and
    /// [`PUSH_RECORDS_MAX`]), then tells the leader what went.
    async fn push(
        self: Rc<Self>,
        tp: TopicPartition,
        id: u64,
        to: i32,
        from: i64,
        end: i64,
        high_watermark: i64,
    ) {
        let mut records = Vec::new();
        let mut sent_end = from;
        // A follower out of the ISR is catching up: paced by the throttle.
        let throttled = !self.in_sync(&tp, to);
        if let Some(log) = self.partitions.get(&tp)
            && from < log.first_retained_offset().get()
        {
            // The follower's log ends below what this log still holds
            // (retention, DeleteRecords): it starts over where the batch
            // holding the log start begins, and says so in its next
            // acknowledgement. Asked again no sooner than a push wait.
            // Then where the log starts, kept by the follower until its
            // log reaches it.
            let start = self.batch_start(&log).await;
            let log_start = log.log_start_offset().get();
            drop(log);
            if let Some(offset) = start {
                let epoch = self.role_epoch(&tp);
                let frame = DataFrame::StartAt {
                    key: key(&tp),
                    leader_epoch: epoch,
                    offset,
                };
                self.send_data(to, encode(&frame));
                self.tell_log_start(&tp, epoch, log_start, &[to]);
            }
            engine::rt::sleep(PUSH_WAIT).await;
        } else if let Some(log) = self.partitions.get(&tp) {
            let watch = log.end_watch();
            let mut moved = std::pin::pin!(watch.moved());
            moved.as_mut().enable();
            let max_bytes = if throttled {
                self.replicas.throttle.push_bytes(PUSH_RECORDS_MAX)
            } else {
                PUSH_RECORDS_MAX
            };
            match log.read_for_replica(Offset(from), max_bytes).await {
                Ok(chunks) => {
                    for chunk in &chunks {
                        let Some(header) = chunk.slices()[0].first_chunk::<HEADER_BYTES>() else {
                            break;
                        };
                        let header = BatchHeader(*header);
                        if header.base_offset().get() >= end {
                            break;
                        }
                        chunk.extend_into(&mut records);
                        sent_end = header.last_offset().get() + 1;
                    }
                }
                Err(e) => {
                    tracing::warn!(partition = %tp, from, to, error = %e, "cannot read for a follower");
                }
            }
            drop(log);
            if sent_end == from {
                // Nothing readable yet: ask again once the log moved.
                let timeout = std::pin::pin!(engine::rt::sleep(PUSH_WAIT));
                futures::future::select(moved, timeout).await;
            }
        }
        if sent_end > from && throttled {
            self.replicas.throttle.wait(records.len()).await;
        }
        if sent_end > from {
            let mut frame = encode_push_head(
                &key(&tp),
                self.role_epoch(&tp),
                from,
                sent_end,
                high_watermark,
                records.len(),
            );
            frame.extend_from_slice(&records);
            self.send_data(to, frame);
        }
        let now = self.replicas.now_ms();
        self.with_leader(&tp, id, |l| l.state.pushed(to, from, sent_end, now));
        self.drive(&tp);
    }

    /// Tells `followers` that the log of `tp` (led here at `leader_epoch`)
    /// starts at `offset` now.
    pub(super) fn tell_log_start(
        &self,
        tp: &TopicPartition,
        leader_epoch: i32,
        offset: i64,
        followers: &[i32],
    ) {
        for &to in followers {
            let frame = DataFrame::LogStart {
                key: key(tp),
                leader_epoch,
                offset,
            };
            self.send_data(to, encode(&frame));
        }
    }

    /// Whether `follower` is in the ISR of the partition this shard leads.
    fn in_sync(&self, tp: &TopicPartition, follower: i32) -> bool {
        match self.replicas.roles.borrow().get(tp).map(|e| &e.role) {
            Some(Role::Leading(l)) => l.state.isr().contains(&follower),
            _ => false,
        }
    }

    /// Where the batch holding the log start begins (at or below it).
    async fn batch_start(&self, log: &engine::Log) -> Option<i64> {
        let log_start = log.log_start_offset();
        match log.read_for_replica(log_start, 1).await {
            Ok(chunks) => {
                let first = chunks.first()?.slices()[0].first_chunk::<HEADER_BYTES>()?;
                Some(BatchHeader(*first).base_offset().get().min(log_start.get()))
            }
            // Nothing readable there: an empty log starts at its start.
            Err(_) => Some(log_start.get()),
        }
    }

    async fn alter_isr(
        self: Rc<Self>,
        tp: TopicPartition,
        id: u64,
        isr: Vec<i32>,
        leader_epoch: i32,
        partition_epoch: i32,
    ) {
        let metadata = self.metadata();
        let me = self.node.node_id;
        let refused = |shard: &Self| {
            let now = shard.replicas.now_ms();
            shard.with_leader(&tp, id, |l| l.state.isr_change_refused(now));
            shard.drive(&tp);
        };
        let (Some(topic), Some(broker)) = (metadata.topic(&tp.topic), metadata.broker(me)) else {
            refused(&self);
            return;
        };
        // A replica the controller fenced (a broker still starting, or
        // gone) would be refused (INELIGIBLE_REPLICA): not asked until the
        // metadata says it is back.
        let current = metadata.partition(topic.topic_id, tp.partition);
        let adds_fenced = isr.iter().any(|r| {
            !current.is_some_and(|p| p.isr.contains(r))
                && metadata.broker(*r).is_none_or(|b| b.fenced)
        });
        if adds_fenced {
            tracing::debug!(partition = %tp, ?isr, "not asking for an ISR with a fenced replica");
            refused(&self);
            return;
        }
        let request = ControllerRequest::AlterIsr {
            broker_id: me,
            broker_epoch: broker.broker_epoch,
            topic_id: topic.topic_id,
            partition: tp.partition,
            leader_epoch,
            partition_epoch,
            isr: isr.clone(),
        };
        tracing::info!(partition = %tp, ?isr, leader_epoch, "asking the controller to change the ISR");
        if let Err(e) = self.ask_controller(request).await {
            tracing::info!(partition = %tp, ?isr, code = e.code, message = %e.message, "ISR change refused");
            refused(&self);
        }
    }

    fn spawn_rewrite(&self, tp: &TopicPartition, id: u64, how: Rewrite, offset: i64) {
        if let Some(shard) = self.me() {
            let tp = tp.clone();
            crate::server::spawn(async move { shard.rewrite(tp, id, how, offset).await });
        }
    }

    /// Rewrites the follower's log as its leader said: cut where the
    /// leader's history says, or started over at the leader's log start.
    async fn rewrite(self: Rc<Self>, tp: TopicPartition, id: u64, how: Rewrite, offset: i64) {
        let config = self.log_config(&self.metadata(), &tp.topic);
        let now = engine::rt::wall_clock_ms();
        tracing::info!(partition = %tp, offset, ?how, "rewriting the log to follow the leader");
        match self
            .partitions
            .rewrite(&tp, how, Offset(offset), config, now)
            .await
        {
            Ok(end) => {
                {
                    let mut roles = self.replicas.roles.borrow_mut();
                    if let Some(Entry {
                        id: current,
                        role: Role::Following(f),
                    }) = roles.get_mut(&tp)
                        && *current == id
                    {
                        match how {
                            Rewrite::CutAt => f.state.truncated(end.get()),
                            Rewrite::StartOver => f.state.started_over(end.get()),
                        }
                    }
                }
                if let Some(log) = self.partitions.get(&tp) {
                    log.set_high_watermark(Some(end));
                }
                self.drive(&tp);
            }
            Err(e) => {
                tracing::error!(partition = %tp, offset, ?how, error = %e, "rewriting the log failed; the replica stops following until its next role");
            }
        }
    }

    /// Asks the cluster's controller (through shard 0, which holds the
    /// cluster handle).
    pub(crate) async fn ask_controller(
        &self,
        request: ControllerRequest,
    ) -> Result<replication::quorum::Committed, replication::quorum::wire::RemoteError> {
        use crate::handlers::errors::NOT_CONTROLLER;
        let unreachable = || replication::quorum::wire::RemoteError {
            code: NOT_CONTROLLER,
            message: "no cluster handle on shard 0".into(),
            leader: None,
        };
        if self.id() == 0 {
            let cluster = self.cluster.borrow().clone().ok_or_else(unreachable)?;
            return cluster.request(request).await;
        }
        let (reply, answer) = futures::channel::oneshot::channel();
        let message = crate::broker::ShardMessage::Controller { request, reply };
        if self.mesh.send(0, message).await.is_err() {
            return Err(unreachable());
        }
        answer.await.map_err(|_| unreachable())?
    }
}
