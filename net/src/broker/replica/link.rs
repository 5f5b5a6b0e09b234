//! The ISR protocol's connections: one outbound per (shard, peer), opened
//! by the shard that writes on it with a `DataHello` naming the peer's
//! shard of the same index (where, with equal shard counts, the same
//! partitions live); the peer's internal listener (shard 0) hands the
//! connection to that shard, which reads its frames. A frame for a
//! partition another shard owns is passed on over the mesh.

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::rc::Rc;

use bytes::Bytes;
use engine::{Offset, PartitionTable, TopicPartition};
use replication::isr::wire::{DATA_FRAME_BYTES_MAX, DataFrame, decode, encode};
use replication::quorum::wire::{self as quorum_wire, Frame};

use super::{Entry, Role};
use crate::broker::{Shard, ShardMessage};
use crate::cluster::raft_id;
use crate::server::Stream;
use crate::server::internal::{PeerLink, read_frame_bytes};

/// This shard's outbound data links, by peer node id.
#[derive(Debug, Default)]
pub(crate) struct Links {
    out: RefCell<HashMap<i32, PeerLink>>,
}

impl Shard {
    /// Queues `frame` (encoded) for node `to`, connecting first if needed.
    pub(super) fn send_data(&self, to: i32, frame: Vec<u8>) {
        let mut out = self.replicas.links.out.borrow_mut();
        if let Some(link) = out.get_mut(&to) {
            link.send(frame);
            return;
        }
        let Some(config) = &self.settings.cluster else {
            return;
        };
        let Some(&(_, addr)) = config.voters.iter().find(|(id, _)| *id == to) else {
            tracing::warn!(to, "no internal address for this node; frame dropped");
            return;
        };
        let hello = quorum_wire::encode(&Frame::DataHello {
            node_id: raft_id(config.node_id),
            cluster_id: config.cluster_id(),
            shard: self.id(),
        });
        let mut link = PeerLink::start(raft_id(to), addr, hello, config.tls.clone());
        link.send(frame);
        out.insert(to, link);
    }

    /// A data connection from node `from` for `shard` (handed over by the
    /// internal listener, on shard 0): read here, or on that shard. A TLS
    /// connection cannot move (its session lives here): it is read here
    /// and its frames go to their partitions' shards over the mesh.
    pub(crate) fn accept_data_link(
        &self,
        from: i32,
        shard: u32,
        stream: Stream,
        peer: Option<std::net::SocketAddr>,
    ) {
        let to = shard % self.shards();
        let stream = match stream {
            Stream::Plain(stream) if to != self.id() => stream,
            stream => {
                if let Some(me) = self.me() {
                    crate::server::spawn(me.read_data_link(from, stream, peer));
                }
                return;
            }
        };
        // Another executor's: the descriptor moves, the stream here closes.
        // SAFETY: dup of a descriptor this stream owns; the copy is owned
        // by the message, then by the stream the other shard makes of it.
        let fd = unsafe { libc::dup(stream.as_raw_fd()) };
        drop(stream);
        if fd < 0 {
            tracing::warn!(from, "cannot hand a data connection over: dup failed");
            return;
        }
        let Some(me) = self.me() else {
            // SAFETY: the descriptor dup returned above, owned here.
            unsafe { libc::close(fd) };
            return;
        };
        crate::server::spawn(async move {
            let message = ShardMessage::DataLink { from, fd };
            if let Err(ShardMessage::DataLink { fd, .. }) = me.mesh.send(to, message).await {
                // SAFETY: the descriptor came back undelivered, owned here.
                unsafe { libc::close(fd) };
            }
        });
    }

    /// On the shard a data connection was handed to.
    pub(crate) fn adopt_data_link(&self, from: i32, fd: RawFd) {
        // SAFETY: a connected TCP socket's descriptor, dup'ed for us and
        // owned by nothing else.
        let stream = unsafe { glommio::net::TcpStream::from_raw_fd(fd) };
        let peer = stream.peer_addr().ok();
        if let Some(me) = self.me() {
            crate::server::spawn(me.read_data_link(from, Stream::Plain(stream), peer));
        }
    }

    async fn read_data_link(
        self: Rc<Self>,
        from: i32,
        mut stream: Stream,
        peer: Option<std::net::SocketAddr>,
    ) {
        loop {
            let body = match read_frame_bytes(&mut stream, DATA_FRAME_BYTES_MAX).await {
                Ok(Some(body)) => body,
                Ok(None) => return,
                Err(reason) => {
                    tracing::warn!(from, ?peer, %reason, "data connection closed");
                    return;
                }
            };
            if crate::failpoint::cut_off() {
                continue; // lost on the way (tests of a partition)
            }
            match decode(Bytes::from(body)) {
                Ok(frame) => self.on_data_frame(from, frame).await,
                Err(e) => {
                    tracing::warn!(from, ?peer, error = %e, "bad data frame; connection closed");
                    return;
                }
            }
        }
    }

    /// A frame from node `from`, for one of this broker's partitions.
    pub(crate) async fn on_data_frame(&self, from: i32, frame: DataFrame) {
        let key = frame.key();
        let tp = TopicPartition::new(key.topic.clone(), key.partition);
        let owner = PartitionTable::owner(&tp, self.shards());
        if owner != self.id() {
            let _ = self
                .mesh
                .send(owner, ShardMessage::Data { from, frame })
                .await;
            return;
        }
        match frame {
            DataFrame::Push {
                leader_epoch,
                from: start,
                end,
                high_watermark,
                records,
                ..
            } => {
                self.take_push(&tp, leader_epoch, start, end, high_watermark, records)
                    .await;
            }
            DataFrame::Ack {
                leader_epoch,
                session,
                log_end,
                durable,
                ..
            } => {
                tracing::trace!(partition = %tp, from, leader_epoch, session, log_end, durable, "ack");
                let now = self.replicas.now_ms();
                if let Some(Role::Leading(l)) = self.role_mut(&tp).as_deref_mut() {
                    l.state
                        .acknowledged(from, leader_epoch, session, log_end, durable, now);
                }
            }
            DataFrame::AskEpochEnd {
                key,
                leader_epoch,
                epoch,
            } => {
                if self.role_epoch(&tp) != leader_epoch || !self.is_leading(&tp) {
                    return; // not (yet) the leader it asks: it asks again
                }
                let Some(log) = self.partitions.get(&tp) else {
                    return;
                };
                let (epoch, end) = log.epoch_end_offset(epoch);
                let answer = DataFrame::EpochEnd {
                    key,
                    leader_epoch,
                    epoch,
                    end: end.get(),
                };
                self.send_data(from, encode(&answer));
            }
            DataFrame::EpochEnd {
                leader_epoch,
                epoch,
                end,
                ..
            } => {
                let Some(log) = self.partitions.get(&tp) else {
                    return;
                };
                tracing::debug!(partition = %tp, leader_epoch, epoch, end, "the leader's epoch end");
                if let Some(Role::Following(f)) = self.role_mut(&tp).as_deref_mut()
                    && f.state.leader_epoch() == leader_epoch
                {
                    f.state.epoch_end(&super::follower_epochs(&log), epoch, end);
                }
            }
            DataFrame::StartAt {
                leader_epoch,
                offset,
                ..
            } => {
                if let Some(Role::Following(f)) = self.role_mut(&tp).as_deref_mut() {
                    f.state.start_at(leader_epoch, offset);
                }
            }
            DataFrame::LogStart {
                leader_epoch,
                offset,
                ..
            } => self.follow_log_start(&tp, leader_epoch, offset),
        }
        self.drive(&tp);
    }

    /// A follower takes a push: appended (staged) here, in order, before
    /// the next frame of the connection is read.
    async fn take_push(
        &self,
        tp: &TopicPartition,
        leader_epoch: i32,
        start: i64,
        end: i64,
        high_watermark: i64,
        records: Bytes,
    ) {
        let Some(log) = self.partitions.get(tp) else {
            return;
        };
        let taken = match self.role_mut(tp).as_deref_mut() {
            Some(Role::Following(f)) => f.state.push(leader_epoch, start, end, high_watermark),
            _ => return,
        };
        tracing::trace!(partition = %tp, leader_epoch, start, end, high_watermark, ?taken, "push");
        if taken.is_err() || end == start {
            return;
        }
        let now = engine::rt::wall_clock_ms();
        if let Err(e) = log.append_replica_from(records, Offset(start), now).await {
            tracing::warn!(partition = %tp, start, end, error = %e, "cannot append a push");
        }
        let log_end = log.next_offset().get();
        if let Some(Role::Following(f)) = self.role_mut(tp).as_deref_mut() {
            f.state.appended(log_end);
        }
        self.catch_log_start(tp);
    }

    fn is_leading(&self, tp: &TopicPartition) -> bool {
        matches!(
            self.replicas.roles.borrow().get(tp).map(|e| &e.role),
            Some(Role::Leading(_))
        )
    }

    /// The leader's log starts at `offset`: this follower's log starts
    /// there too, once it reaches it (a follower that started over below
    /// it, or is behind, keeps it until then).
    fn follow_log_start(&self, tp: &TopicPartition, leader_epoch: i32, offset: i64) {
        if let Some(Role::Following(f)) = self.role_mut(tp).as_deref_mut()
            && f.state.leader_epoch() == leader_epoch
        {
            f.log_start = Some(f.log_start.map_or(offset, |known| known.max(offset)));
        }
        self.catch_log_start(tp);
    }

    /// Moves this follower's log start to the leader's, if the log reaches
    /// it now.
    fn catch_log_start(&self, tp: &TopicPartition) {
        let Some(log) = self.partitions.get(tp) else {
            return;
        };
        let start = {
            let mut role = self.role_mut(tp);
            let Some(Role::Following(f)) = role.as_deref_mut() else {
                return;
            };
            match f.log_start {
                Some(start) if log.log_end_offset().get() >= start => f.log_start.take(),
                _ => None,
            }
        };
        let Some(start) = start.map(Offset).filter(|s| *s > log.log_start_offset()) else {
            return;
        };
        let tp = tp.clone();
        crate::server::spawn(async move {
            if let Err(e) = log.delete_records(start).await {
                tracing::warn!(partition = %tp, offset = start.get(), error = %e, "cannot move the log start as the leader did");
            }
        });
    }

    /// The role of `tp`, borrowed mutably (`None` without one).
    fn role_mut(&self, tp: &TopicPartition) -> Option<std::cell::RefMut<'_, Role>> {
        let roles = self.replicas.roles.borrow_mut();
        std::cell::RefMut::filter_map(roles, |roles| {
            roles.get_mut(tp).map(|Entry { role, .. }| role)
        })
        .ok()
    }
}
