//! One device-cache flush for the logs of a shard that share a device.
//!
//! An fdatasync does two things: it writes the file's metadata that its
//! data needs (allocated blocks, size, written extents) and then flushes
//! the device's volatile write cache, which makes every write the device
//! completed before it durable, whatever file it was for. A log whose
//! unsynced writes are all pure overwrites (into blocks whose zeros and
//! metadata an earlier fdatasync of its own made durable: flusher,
//! `SEGMENT_ZERO_AHEAD_BYTES`) needs only the flush. Such logs join a
//! group commit per device and shard: every log that asks while a flush
//! runs is served by the next one, a single fdatasync through the first
//! asker's file. With many partitions on a shard that is one fdatasync per
//! round instead of one per partition.
//!
//! Only on ext4 and XFS, whose fdatasync flushes the device cache even when
//! the file has nothing of its own to write (ext4: `needs_barrier` with
//! barriers on, the default; XFS: the data device flush when the log force
//! was a no-op). Elsewhere (btrfs can skip the flush) logs sync their own
//! files.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::rc::Rc;

use futures::channel::oneshot;

use crate::IoError;
use crate::io::{SegmentFile, spawn_detached};

type Reply = oneshot::Sender<Result<(), (io::ErrorKind, String)>>;

/// The flushes of one device on one shard.
#[derive(Debug, Default)]
pub(crate) struct FlushGroup {
    state: RefCell<GroupState>,
}

#[derive(Debug, Default)]
struct GroupState {
    /// A flush is under way.
    running: bool,
    /// Who waits for the next flush, and the file it goes through.
    next: Vec<Reply>,
    next_file: Option<Rc<SegmentFile>>,
    /// Flushes issued, for tests.
    flushes: u64,
}

thread_local! {
    /// This shard's groups, by device.
    static GROUPS: RefCell<HashMap<u64, Rc<FlushGroup>>> = RefCell::new(HashMap::new());
}

/// ext4 (and ext2/3, which share it) and XFS.
const EXT4_SUPER_MAGIC: i64 = 0xEF53;
const XFS_SUPER_MAGIC: i64 = 0x5846_5342;

/// The group of the device `dir` is on, for this shard; `None` when its
/// file system is not one whose fdatasync always flushes the device.
pub(crate) fn for_dir(dir: &Path) -> Option<Rc<FlushGroup>> {
    let device = std::fs::metadata(dir).ok()?.dev();
    if !flushes_on_every_sync(dir) {
        return None;
    }
    Some(GROUPS.with(|groups| Rc::clone(groups.borrow_mut().entry(device).or_default())))
}

fn flushes_on_every_sync(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statfs writes into the zeroed struct it is given and reads
    // the NUL-terminated path.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(path.as_ptr(), &mut stat) } != 0 {
        return false;
    }
    #[allow(clippy::unnecessary_cast)] // f_type's width differs by target
    let kind = stat.f_type as i64;
    kind == EXT4_SUPER_MAGIC || kind == XFS_SUPER_MAGIC
}

impl FlushGroup {
    /// Completes once a flush of the device that started after this call
    /// has completed: every write completed before the call is durable,
    /// as far as the device cache is concerned. `file` is any file of
    /// the device (the caller's): the flush may go through it.
    pub(crate) fn flush(
        self: &Rc<Self>,
        file: &Rc<SegmentFile>,
    ) -> impl std::future::Future<Output = Result<(), IoError>> + 'static {
        let (reply, answer) = oneshot::channel();
        {
            let mut state = self.state.borrow_mut();
            state.next.push(reply);
            state.next_file.get_or_insert_with(|| Rc::clone(file));
        }
        self.start_if_idle();
        let path = file.path().to_path_buf();
        async move {
            match answer.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err((kind, message))) => Err(IoError::new(
                    "fdatasync",
                    path,
                    io::Error::new(kind, message),
                )),
                // The executor is going away with the flush.
                Err(oneshot::Canceled) => Err(IoError::new(
                    "fdatasync",
                    path,
                    io::Error::other("the shard's flush was dropped"),
                )),
            }
        }
    }

    fn start_if_idle(self: &Rc<Self>) {
        let (waiters, file) = {
            let mut state = self.state.borrow_mut();
            if state.running || state.next.is_empty() {
                return;
            }
            let Some(file) = state.next_file.take() else {
                return;
            };
            state.running = true;
            state.flushes += 1;
            (std::mem::take(&mut state.next), file)
        };
        let group = Rc::clone(self);
        // Its own task: the flush and the hand-over to the next one happen
        // even if every waiter gives up meanwhile.
        spawn_detached(async move {
            let started = std::time::Instant::now();
            let result = file.fdatasync().await;
            crate::stats::record_sync(started.elapsed());
            let answer = result.map_err(|e| (e.source.kind(), e.to_string()));
            for waiter in waiters {
                let _ = waiter.send(answer.clone());
            }
            group.state.borrow_mut().running = false;
            group.start_if_idle();
        });
    }

    #[cfg(test)]
    pub(crate) fn flushes(&self) -> u64 {
        self.state.borrow().flushes
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::batch::builder::simple_batch;
    use crate::limits::SEGMENT_ZERO_AHEAD_BYTES;
    use crate::{Log, LogConfig, Offset};

    /// Logs of one shard appending durably at once: once their zeros are
    /// synced, their syncs are shared device flushes (fewer flushes than
    /// appends), and everything acknowledged reads back after a reopen.
    #[test]
    fn logs_of_a_shard_share_device_flushes_and_keep_every_append() {
        crate::rt::run_on_executor("flush-group", None, move || async move {
            let tmp = tempfile::tempdir().unwrap();
            let Some(group) = for_dir(tmp.path()) else {
                eprintln!("not ext4 or XFS: logs sync their own files; nothing to test");
                return;
            };
            const LOGS: usize = 8;
            let mut logs = Vec::new();
            for i in 0..LOGS {
                let dir = tmp.path().join(format!("t-{i}"));
                logs.push(Rc::new(
                    Log::open(&dir, LogConfig::default(), 0).await.unwrap(),
                ));
            }
            // Past the first zeros' own sync, then rounds of one append per
            // log, all in flight together.
            let rounds = 2 * SEGMENT_ZERO_AHEAD_BYTES as usize / 8200 + 20;
            let before = group.flushes();
            for round in 0..rounds {
                let appends = logs.iter().enumerate().map(|(i, log)| {
                    let batch = simple_batch(1, 8000, 0, (round + i) as u8);
                    let log = Rc::clone(log);
                    async move { log.append(Bytes::from(batch), 0).await.unwrap() }
                });
                futures::future::join_all(appends).await;
            }
            let shared = group.flushes() - before;
            let appends = (rounds * LOGS) as u64;
            assert!(shared > 0, "no shared flush in {appends} appends");
            assert!(
                shared < appends / 2,
                "{shared} shared flushes for {appends} appends"
            );
            for (i, log) in logs.into_iter().enumerate() {
                let log = Rc::try_unwrap(log).unwrap();
                log.close().await.unwrap();
                let dir = tmp.path().join(format!("t-{i}"));
                let log = Log::open(&dir, LogConfig::default(), 0).await.unwrap();
                assert_eq!(log.log_end_offset(), Offset(rounds as i64), "log {i}");
                let read = log.read(Offset(rounds as i64 - 1), 1).await.unwrap();
                assert_eq!(read.chunks.len(), 1, "log {i}");
                log.close().await.unwrap();
            }
        })
        .unwrap();
    }
}
