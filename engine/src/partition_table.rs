//! The partitions one shard owns: `<data-dir>/<topic>-<partition>/`.
//!
//! Lives on its shard. Placement is a pure function of the topic, the
//! partition and the shard count ([`PartitionTable::owner`]), so it is the
//! same after a restart with the same shard count; the metadata layer may
//! replace it with an explicit assignment later.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use futures::StreamExt;

use crate::limits::LOGS_OPENED_AT_ONCE as LOGS_AT_ONCE;
use crate::{Error, Log, LogConfig, Result, io};

mod logs;

use logs::Logs;

/// A topic partition, named as Kafka names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }

    /// Parses a `<topic>-<partition>` directory name (topics may contain '-').
    pub fn from_dir_name(name: &str) -> Option<TopicPartition> {
        let (topic, partition) = name.rsplit_once('-')?;
        let partition: i32 = partition.parse().ok().filter(|p| *p >= 0)?;
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        (!topic.is_empty() && topic.chars().all(valid))
            .then(|| TopicPartition::new(topic, partition))
    }

    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

const DELETED_SUFFIX: &str = ".deleted";

/// The open logs of the partitions one shard owns. Lives on its shard;
/// every method takes `&self` (no borrow is held across an await), so
/// handlers share it while partitions are created and deleted.
#[derive(Debug)]
pub struct PartitionTable {
    data_dir: PathBuf,
    shard: u32,
    shard_count: u32,
    /// By topic, then partition number: a fetch of thousands of partitions
    /// looks up each of them on every pass.
    logs: RefCell<Logs<Rc<Log>>>,
    /// Partitions being created right now: a second create must not open
    /// the same directory concurrently.
    creating: RefCell<BTreeSet<TopicPartition>>,
    /// Set by [`PartitionTable::close_all`]: the shard is stopping and
    /// creates nothing more.
    closed: std::cell::Cell<bool>,
}

/// How [`PartitionTable::rewrite`] rewrites a follower's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewrite {
    /// Cut at the offset: everything from there on goes (a follower of a
    /// new leader whose history differs).
    CutAt,
    /// Emptied and started again at the offset (it ended below the
    /// leader's log start).
    StartOver,
}

impl PartitionTable {
    /// The shard that owns `tp` among `shard_count` shards.
    pub fn owner(tp: &TopicPartition, shard_count: u32) -> u32 {
        Self::owner_of(&tp.topic, tp.partition, shard_count)
    }

    /// [`PartitionTable::owner`] of `topic`'s `partition`.
    pub fn owner_of(topic: &str, partition: i32, shard_count: u32) -> u32 {
        let hash = crc32c::crc32c(topic.as_bytes());
        (hash.wrapping_add(partition as u32)) % shard_count.max(1)
    }

    /// Opens every partition under `data_dir` that this shard owns, each with
    /// the config `config_for` gives its topic. Finishes interrupted deletes.
    pub async fn open(
        data_dir: impl AsRef<Path>,
        shard: u32,
        shard_count: u32,
        config_for: impl Fn(&str) -> LogConfig,
        now_ms: i64,
    ) -> Result<PartitionTable> {
        let data_dir = data_dir.as_ref().to_path_buf();
        assert!(shard < shard_count.max(1));
        io::create_dir(&data_dir).await?;
        let mut found = Vec::new();
        for name in io::list_dir(&data_dir)? {
            let path = data_dir.join(&name);
            if name.ends_with(DELETED_SUFFIX) {
                if Self::owner_of_name(&name, shard_count) == Some(shard) {
                    io::remove_dir_all(&path).await?;
                }
                continue;
            }
            let Some(tp) = TopicPartition::from_dir_name(&name) else {
                continue;
            };
            if !path.is_dir() || Self::owner(&tp, shard_count) != shard {
                continue;
            }
            let config = config_for(&tp.topic);
            found.push((tp, path, config));
        }
        // Many at once: an open is a few small reads and at most one
        // synced write, so the device and io_uring overlap them.
        let mut opening = futures::stream::iter(found)
            .map(|(tp, path, config)| async move {
                let log = Log::open(&path, config, now_ms).await;
                (tp, log)
            })
            .buffer_unordered(LOGS_AT_ONCE);
        let mut logs = Logs::default();
        while let Some((tp, log)) = opening.next().await {
            logs.insert(tp, Rc::new(log?));
        }
        Ok(PartitionTable {
            data_dir,
            shard,
            shard_count,
            logs: RefCell::new(logs),
            creating: RefCell::new(BTreeSet::new()),
            closed: std::cell::Cell::new(false),
        })
    }

    fn owner_of_name(name: &str, shard_count: u32) -> Option<u32> {
        let stem = name.strip_suffix(DELETED_SUFFIX)?;
        TopicPartition::from_dir_name(stem).map(|tp| Self::owner(&tp, shard_count))
    }

    pub fn shard(&self) -> u32 {
        self.shard
    }

    /// Creates a new, empty partition on this shard.
    pub async fn create(
        &self,
        tp: TopicPartition,
        config: LogConfig,
        now_ms: i64,
    ) -> Result<Rc<Log>> {
        if Self::owner(&tp, self.shard_count) != self.shard {
            return Err(Error::UnknownPartition(tp.to_string()));
        }
        if TopicPartition::from_dir_name(&tp.dir_name()).as_ref() != Some(&tp) {
            return Err(Error::InvalidPartitionName(tp.dir_name()));
        }
        let dir = self.data_dir.join(tp.dir_name());
        if self.closed.get() {
            return Err(Error::Closed);
        }
        if self.logs.borrow().contains(&tp)
            || dir.exists()
            || !self.creating.borrow_mut().insert(tp.clone())
        {
            return Err(Error::PartitionExists(tp.to_string()));
        }
        let opened = Log::open(&dir, config, now_ms).await;
        if opened.is_err() {
            // What the failed open left (the directory, perhaps a segment
            // file) goes, so that a retry creates the partition instead of
            // finding it exists. A crash before this opens it, empty, at
            // the next start.
            if let Err(e) = io::remove_dir_all(&dir).await {
                tracing::warn!(partition = %tp, error = %e, "removing a partition whose create failed");
            }
        }
        self.creating.borrow_mut().remove(&tp);
        let log = Rc::new(opened?);
        self.logs.borrow_mut().insert(tp, Rc::clone(&log));
        Ok(log)
    }

    /// Whether [`PartitionTable::close_all`] ran (the shard is stopping).
    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    pub fn get(&self, tp: &TopicPartition) -> Option<Rc<Log>> {
        self.get_by(&tp.topic, tp.partition)
    }

    /// [`PartitionTable::get`] by the topic's name and the partition.
    pub fn get_by(&self, topic: &str, partition: i32) -> Option<Rc<Log>> {
        self.logs.borrow().get(topic, partition).cloned()
    }

    /// The logs of `partitions` of `topic`, in their order (`None` for one
    /// not here), the topic looked up once.
    pub fn get_each(
        &self,
        topic: &str,
        partitions: impl IntoIterator<Item = i32>,
    ) -> Vec<Option<Rc<Log>>> {
        let logs = self.logs.borrow();
        let of_topic = logs.topic(topic).unwrap_or(&[]);
        partitions
            .into_iter()
            .map(|p| of_topic.get(usize::try_from(p).ok()?)?.clone())
            .collect()
    }

    /// Every partition here, in order.
    pub fn partitions(&self) -> Vec<TopicPartition> {
        let mut partitions: Vec<TopicPartition> = self
            .logs
            .borrow()
            .iter()
            .map(|(topic, partition, _)| TopicPartition::new(topic, partition))
            .collect();
        partitions.sort_unstable();
        partitions
    }

    /// Closes and deletes a partition and all its files. The directory is
    /// first renamed aside (and the rename made durable), so a crash midway
    /// never leaves a half-deleted partition that would be opened again.
    pub async fn delete(&self, tp: &TopicPartition) -> Result<()> {
        let log = self.take(tp).await?;
        let dir = log.dir().to_path_buf();
        if let Err(e) = log.close().await {
            // A poisoned log still goes: its data is being deleted anyway.
            tracing::warn!(partition = %tp, error = %e, "closing before delete failed; deleting anyway");
        }
        let aside = self
            .data_dir
            .join(format!("{}{DELETED_SUFFIX}", tp.dir_name()));
        std::fs::rename(&dir, &aside).map_err(|e| crate::IoError::new("rename", &dir, e))?;
        io::sync_dir(&self.data_dir).await?;
        io::remove_dir_all(&aside).await?;
        io::sync_dir(&self.data_dir).await?;
        Ok(())
    }

    /// Rewrites a follower's log to follow its leader, as `how` says, at
    /// `offset`: the log is taken out of the table while it is rewritten
    /// and reopened, so requests meanwhile find no partition. Returns the
    /// new log end.
    pub async fn rewrite(
        &self,
        tp: &TopicPartition,
        how: Rewrite,
        offset: crate::Offset,
        config: crate::LogConfig,
        now_ms: i64,
    ) -> Result<crate::Offset> {
        let log = self.take(tp).await?;
        let log = match how {
            Rewrite::CutAt => log.truncate_to(offset, config, now_ms).await?,
            Rewrite::StartOver => log.start_over_at(offset, config, now_ms).await?,
        };
        let end = log.log_end_offset();
        self.logs.borrow_mut().insert(tp.clone(), Rc::new(log));
        Ok(end)
    }

    /// Takes a partition out of the table, once no request holds it.
    async fn take(&self, tp: &TopicPartition) -> Result<Log> {
        let log = self
            .logs
            .borrow_mut()
            .remove(tp)
            .ok_or_else(|| Error::UnknownPartition(tp.to_string()))?;
        Ok(sole_owner(log).await)
    }

    /// Applies retention to every partition; returns segments deleted.
    pub async fn enforce_retention(&self, now_ms: i64) -> usize {
        let logs: Vec<_> = self
            .logs
            .borrow()
            .iter()
            .map(|(topic, partition, log)| (TopicPartition::new(topic, partition), Rc::clone(log)))
            .collect();
        let mut deleted = 0;
        for (tp, log) in logs {
            match log.enforce_retention(now_ms).await {
                Ok(n) => deleted += n,
                Err(e) => tracing::warn!(partition = %tp, error = %e, "retention failed"),
            }
        }
        deleted
    }

    /// One cleaning pass of the compacted partition most in need (Kafka's
    /// cleaner manager): the highest dirty ratio at or above its
    /// `min.cleanable.dirty.ratio`, or one whose oldest dirty segment is
    /// older than its `max.compaction.lag.ms`, or one with a tombstone
    /// past its `delete.retention.ms`. `None` when none is due or
    /// the pass failed (logged).
    pub async fn clean_dirtiest(
        &self,
        now_ms: i64,
        map_bytes: usize,
    ) -> Option<(TopicPartition, crate::CleanStats)> {
        let pick = self
            .logs
            .borrow()
            .iter()
            .filter_map(|(topic, partition, log)| {
                let ratio = log.dirty_ratio(now_ms);
                let due = ratio > 0.0
                    && (ratio >= log.config().min_cleanable_dirty_ratio.0
                        || log.compaction_overdue(now_ms))
                    || log.tombstones_due(now_ms);
                due.then(|| (ratio, TopicPartition::new(topic, partition), Rc::clone(log)))
            })
            // Ties: the last partition in order, whatever the hashing.
            .max_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        let (ratio, tp, log) = pick?;
        let started = std::time::Instant::now();
        match log.clean(map_bytes, now_ms).await {
            Ok(stats) => {
                let seconds = started.elapsed().as_secs_f64();
                let read = stats.bytes_mapped + stats.bytes_before;
                tracing::info!(
                    partition = %tp,
                    dirty_ratio = ratio,
                    dirty_ratio_after = log.dirty_ratio(now_ms),
                    segments = stats.segments,
                    merged = stats.merged,
                    bytes_mapped = stats.bytes_mapped,
                    bytes_before = stats.bytes_before,
                    bytes_after = stats.bytes_after,
                    bytes_cleaned_since_open = log.cleaned().0,
                    ms = seconds * 1e3,
                    read_mb_per_s = read as f64 / 1e6 / seconds.max(1e-9),
                    "log cleaned"
                );
                Some((tp, stats))
            }
            Err(e) => {
                tracing::warn!(partition = %tp, error = %e, "log cleaning failed");
                None
            }
        }
    }

    /// Closes every log (flushing what is staged), once no request holds it.
    pub async fn close(self) -> Result<()> {
        self.close_all().await
    }

    /// Closes every log and leaves the table empty (for a table shared by
    /// tasks that may outlive the shutdown).
    pub async fn close_all(&self) -> Result<()> {
        self.closed.set(true);
        let logs = self.logs.borrow_mut().take_all();
        let mut closing = futures::stream::iter(logs)
            .map(|(tp, log)| async move { (tp, sole_owner(log).await.close().await) })
            .buffer_unordered(LOGS_AT_ONCE);
        let mut first_error = None;
        while let Some((tp, closed)) = closing.next().await {
            if let Err(e) = closed {
                tracing::error!(partition = %tp, error = %e, "close failed");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Waits until requests in flight let go of `log` (they hold it only for the
/// duration of one request).
async fn sole_owner(log: Rc<Log>) -> Log {
    let mut log = log;
    loop {
        match Rc::try_unwrap(log) {
            Ok(owned) => return owned,
            Err(shared) => {
                log = shared;
                io::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_names_round_trip_even_with_dashes() {
        let tp = TopicPartition::new("my-topic.v2", 13);
        assert_eq!(tp.dir_name(), "my-topic.v2-13");
        assert_eq!(TopicPartition::from_dir_name("my-topic.v2-13"), Some(tp));
        assert_eq!(TopicPartition::from_dir_name("nodash"), None);
        assert_eq!(
            TopicPartition::from_dir_name("t--1"),
            Some(TopicPartition::new("t-", 1))
        );
        assert_eq!(TopicPartition::from_dir_name("-1"), None);
        assert_eq!(TopicPartition::from_dir_name("bad/name-1"), None);
    }

    /// Creating a partition fails (its segment file does not open): the
    /// next create of it succeeds, and it is there after a restart.
    #[test]
    fn a_failed_create_can_be_retried() {
        crate::rt::run_on_executor("failed-create", None, || async {
            let tmp = tempfile::tempdir().unwrap();
            let tp = TopicPartition::new("t", 0);
            let table = PartitionTable::open(tmp.path(), 0, 1, |_| LogConfig::default(), 0)
                .await
                .unwrap();
            crate::io::failpoint::fail_next("open");
            let failed = table.create(tp.clone(), LogConfig::default(), 0).await;
            assert!(matches!(failed, Err(Error::Io(_))), "{failed:?}");
            assert!(table.get(&tp).is_none());
            assert!(!tmp.path().join(tp.dir_name()).exists());
            let log = table
                .create(tp.clone(), LogConfig::default(), 0)
                .await
                .unwrap();
            assert_eq!(log.log_end_offset(), crate::Offset(0));
            drop(log);
            table.close_all().await.unwrap();
            let table = PartitionTable::open(tmp.path(), 0, 1, |_| LogConfig::default(), 0)
                .await
                .unwrap();
            assert_eq!(table.partitions(), vec![tp]);
            table.close_all().await.unwrap();
        })
        .unwrap();
    }

    #[test]
    fn placement_is_deterministic_and_spreads() {
        let owners: Vec<u32> = (0..64)
            .map(|p| PartitionTable::owner(&TopicPartition::new("t", p), 4))
            .collect();
        assert_eq!(
            owners,
            (0..64)
                .map(|p| PartitionTable::owner(&TopicPartition::new("t", p), 4))
                .collect::<Vec<_>>()
        );
        for shard in 0..4 {
            assert_eq!(owners.iter().filter(|&&o| o == shard).count(), 16);
        }
    }
}
