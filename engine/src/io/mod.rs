//! The engine's only contact with glommio: direct-I/O segment files, small
//! buffered files, directory operations, local tasks and timers. Nothing
//! outside this module (and the public [`crate::rt`]) names a glommio type,
//! so a port to another io_uring runtime replaces these two files.

use std::cell::RefCell;
use std::collections::HashSet;
use std::future::Future;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::task::{ArcWake, AtomicWaker};

use glommio::io::{BufferedFile, Directory, DmaFile, OpenOptions};

use crate::IoError;

mod segment_file;
pub use segment_file::ReadBuf;
pub(crate) use segment_file::{SegmentFile, WriteBuf, descriptor_usage, set_descriptor_limit};

fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(glommio::GlommioError<()>) -> IoError + 'a {
    move |e| IoError::new(op, path, io::Error::from(e))
}

/// Polls a glommio file operation only after it asked to be woken, with a
/// waker of its own.
///
/// glommio adds a clone of the polling task's waker to the operation's list
/// on every poll that finds it pending (`Source::collect_rw`, which uses
/// `add_waiter_many`), and a glommio task allows at most `i16::MAX` waker
/// clones. A task that polls a pending operation from a loop woken by other
/// events clones on every turn until the operation completes: the accept
/// loop (a pending accept re-polled at every stop check) overflowed the
/// count after about 27 idle minutes and the shard panicked ("Waker
/// invariant broken", refcount -32768), taking the broker down; a log's
/// flusher (a pending fdatasync re-polled at every append) has the same
/// shape. Through this wrapper the operation is polled once per wake-up of
/// its own, and the task's waker is held once (replaced, not added to).
pub(crate) fn quiet<F: Future>(future: F) -> Quiet<F> {
    let signal = Arc::new(Signal {
        woken: AtomicBool::new(true),
        task: AtomicWaker::new(),
    });
    Quiet {
        waker: futures::task::waker(Arc::clone(&signal)),
        inner: Box::pin(future),
        signal,
    }
}

/// See [`quiet`].
pub(crate) struct Quiet<F> {
    inner: Pin<Box<F>>,
    signal: Arc<Signal>,
    waker: Waker,
}

struct Signal {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl ArcWake for Signal {
    fn wake_by_ref(signal: &Arc<Self>) {
        signal.woken.store(true, Ordering::Release);
        signal.task.wake();
    }
}

impl<F: Future> Future for Quiet<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        this.signal.task.register(cx.waker());
        if !this.signal.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        this.inner
            .as_mut()
            .poll(&mut Context::from_waker(&this.waker))
    }
}

thread_local! {
    /// Devices on which this executor already opened a non-empty DMA file.
    static PROBED: RefCell<HashSet<u64>> = RefCell::new(HashSet::new());
}

/// glommio decides per executor and device, from the first DMA file opened,
/// whether the device supports polled I/O; an empty new file makes it guess
/// wrong and every later read fails with EOPNOTSUPP. So the first DMA file
/// opened on a device is a non-empty sentinel in the parent directory.
async fn probe_device(path: &Path) -> Result<(), IoError> {
    let dir = parent_dir(parent_dir(path));
    let dev = std::fs::metadata(dir)
        .map_err(|e| IoError::new("stat", dir, e))?
        .dev();
    if PROBED.with(|p| p.borrow().contains(&dev)) {
        return Ok(());
    }
    let sentinel = dir.join(".dma-probe");
    let needs_write = std::fs::metadata(&sentinel)
        .map(|m| m.len() < 4096)
        .unwrap_or(true);
    if needs_write {
        std::fs::write(&sentinel, [0xa5u8; 4096])
            .map_err(|e| IoError::new("write", &sentinel, e))?;
    }
    let file = DmaFile::open(&sentinel)
        .await
        .map_err(io_err("open", &sentinel))?;
    file.close().await.map_err(io_err("close", &sentinel))?;
    PROBED.with(|p| p.borrow_mut().insert(dev));
    Ok(())
}

/// The directory holding `path` ("." for a bare relative name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// fsyncs a directory, making creations, renames and removals in it durable.
pub(crate) async fn sync_dir(path: &Path) -> Result<(), IoError> {
    // glommio opens directories relative to no directory: give it a full path.
    let path = &std::path::absolute(path).map_err(|e| IoError::new("open dir", path, e))?;
    let dir = Directory::open(path)
        .await
        .map_err(io_err("open dir", path))?;
    dir.sync().await.map_err(io_err("fsync dir", path))?;
    dir.close().await.map_err(io_err("close dir", path))
}

/// Renames `from` to `to`, replacing it (the caller fsyncs the directory).
pub(crate) async fn rename(from: &Path, to: &Path) -> Result<(), IoError> {
    glommio::io::rename(from, to)
        .await
        .map_err(io_err("rename", from))
}

/// Writes `bytes` to `path` atomically: temp file, fdatasync, rename, fsync dir.
pub(crate) async fn write_file_atomic(path: &Path, bytes: Vec<u8>) -> Result<(), IoError> {
    let tmp = path.with_extension("tmp");
    write_file_synced(&tmp, bytes).await?;
    glommio::io::rename(&tmp, path)
        .await
        .map_err(io_err("rename", &tmp))?;
    sync_dir(parent_dir(path)).await
}

/// Creates or replaces `path` with `bytes` and fdatasyncs it (no dir sync).
pub(crate) async fn write_file_synced(path: &Path, bytes: Vec<u8>) -> Result<(), IoError> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .buffered_open(path)
        .await
        .map_err(io_err("create", path))?;
    let len = bytes.len();
    let written = if len == 0 {
        0
    } else {
        file.write_at(bytes, 0)
            .await
            .map_err(io_err("write", path))?
    };
    if written != len {
        let e = io::Error::new(io::ErrorKind::WriteZero, "short write");
        return Err(IoError::new("write", path, e));
    }
    file.fdatasync().await.map_err(io_err("fdatasync", path))?;
    file.close().await.map_err(io_err("close", path))
}

/// Reads a whole small file; `None` if it does not exist.
pub(crate) async fn read_file(path: &Path) -> Result<Option<Vec<u8>>, IoError> {
    let Some(file) = open_buffered(path).await? else {
        return Ok(None);
    };
    let size = file.file_size().await.map_err(io_err("stat", path))?;
    let len = usize::try_from(size)
        .map_err(|_| IoError::new("read", path, io::Error::other("file too large")))?;
    let bytes = file
        .read_at(0, len)
        .await
        .map_err(io_err("read", path))?
        .to_vec();
    file.close().await.map_err(io_err("close", path))?;
    Ok(Some(bytes))
}

async fn open_buffered(path: &Path) -> Result<Option<BufferedFile>, IoError> {
    match BufferedFile::open(path).await {
        Ok(file) => Ok(Some(file)),
        Err(e) => {
            let e = io::Error::from(e);
            if e.kind() == io::ErrorKind::NotFound {
                return Ok(None);
            }
            Err(IoError::new("open", path, e))
        }
    }
}

/// A file's length; `None` if it does not exist.
pub(crate) fn file_len(path: &Path) -> Result<Option<u64>, IoError> {
    match std::fs::metadata(path) {
        Ok(meta) => Ok(Some(meta.len())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(IoError::new("stat", path, e)),
    }
}

/// Reads `len` bytes at `position` of a small file (fewer at its end);
/// `None` if it does not exist.
pub(crate) async fn read_at(
    path: &Path,
    position: u64,
    len: usize,
) -> Result<Option<Vec<u8>>, IoError> {
    let Some(file) = open_buffered(path).await? else {
        return Ok(None);
    };
    let bytes = file
        .read_at(position, len)
        .await
        .map_err(io_err("read", path))?
        .to_vec();
    file.close().await.map_err(io_err("close", path))?;
    Ok(Some(bytes))
}

/// Removes a file in the blocking pool (unlinking a large file takes
/// hundreds of milliseconds). A missing file is not an error.
pub(crate) async fn remove_file(path: &Path) -> Result<(), IoError> {
    match glommio::io::remove(path).await {
        Ok(()) => Ok(()),
        Err(e) => {
            let e = io::Error::from(e);
            if e.kind() == io::ErrorKind::NotFound {
                Ok(())
            } else {
                Err(IoError::new("remove", path, e))
            }
        }
    }
}

/// Runs `work` on the executor's blocking pool (a thread of its own) and
/// gives its result, so CPU-heavy work does not stall the executor.
pub(crate) fn spawn_blocking<F, R>(work: F) -> impl Future<Output = R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    glommio::executor().spawn_blocking(work)
}

/// Removes a directory tree in the blocking pool.
pub(crate) async fn remove_dir_all(path: &Path) -> Result<(), IoError> {
    let owned = path.to_path_buf();
    glommio::executor()
        .spawn_blocking(move || std::fs::remove_dir_all(&owned))
        .await
        .map_err(|e| IoError::new("remove dir", path, e))
}

/// Creates a directory (and parents) and fsyncs the parent.
pub(crate) async fn create_dir(path: &Path) -> Result<(), IoError> {
    std::fs::create_dir_all(path).map_err(|e| IoError::new("create dir", path, e))?;
    sync_dir(parent_dir(path)).await
}

/// Lists the names of the entries of a directory (small directories only:
/// a partition holds a few files per segment).
pub(crate) fn list_dir(path: &Path) -> Result<Vec<String>, IoError> {
    let entries = std::fs::read_dir(path).map_err(|e| IoError::new("list dir", path, e))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| IoError::new("list dir", path, e))?;
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}

/// A handle to a task running on this executor; awaiting it waits for it.
pub(crate) struct TaskHandle<T>(glommio::Task<T>);

impl<T> std::fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TaskHandle")
    }
}

impl<T> TaskHandle<T> {
    pub(crate) async fn join(self) -> T {
        self.0.await
    }
}

/// Spawns a task on the current executor.
pub(crate) fn spawn<T: 'static>(fut: impl Future<Output = T> + 'static) -> TaskHandle<T> {
    TaskHandle(glommio::spawn_local(fut))
}

/// The CPU share of the background queue against the default queue's
/// 1000: when both have work, background tasks get about 1%.
const BACKGROUND_SHARES: usize = 10;

thread_local! {
    static BACKGROUND: std::cell::OnceCell<glommio::TaskQueueHandle> =
        const { std::cell::OnceCell::new() };
}

/// Spawns a task into this executor's background queue (a small CPU
/// share, latency not important: housekeeping such as log cleaning), to
/// run until it ends or the executor does.
pub(crate) fn spawn_background(fut: impl Future<Output = ()> + 'static) {
    let queue = BACKGROUND.with(|queue| {
        *queue.get_or_init(|| {
            glommio::executor().create_task_queue(
                glommio::Shares::Static(BACKGROUND_SHARES),
                glommio::Latency::NotImportant,
                "background",
            )
        })
    });
    match glommio::spawn_local_into(fut, queue) {
        Ok(task) => {
            task.detach();
        }
        Err(e) => tracing::error!(error = %e, "cannot spawn a background task"),
    }
}

/// Lets the executor's other task queues run before this task goes on:
/// glommio preempts a queue only when its time slice (100 ms) ends, so a
/// background task busy with ready work (the cleaner's reads, filters and
/// writes) would otherwise hold requests up that long.
pub(crate) async fn yield_queue() {
    glommio::executor().yield_task_queue_now().await;
}

/// Spawns a task on the current executor that runs until it ends or the
/// executor does.
pub(crate) fn spawn_detached(fut: impl Future<Output = ()> + 'static) {
    glommio::spawn_local(fut).detach();
}

pub(crate) async fn sleep(duration: Duration) {
    glommio::timer::sleep(duration).await;
}

/// Injected I/O failures for unit tests: the next `op` on this executor
/// thread fails with EIO.
#[cfg(test)]
pub(crate) mod failpoint {
    use std::cell::Cell;
    use std::path::Path;

    use crate::IoError;

    thread_local! {
        static ARMED: Cell<Option<&'static str>> = const { Cell::new(None) };
    }

    /// Makes the next `op` ("open", "write", "fdatasync", "fallocate" or
    /// "zeros") fail with EIO.
    pub(crate) fn fail_next(op: &'static str) {
        ARMED.with(|armed| armed.set(Some(op)));
    }

    pub(super) fn check(op: &'static str, path: &Path) -> Result<(), IoError> {
        if ARMED.with(|armed| armed.get()) == Some(op) {
            ARMED.with(|armed| armed.set(None));
            return Err(IoError::new(
                op,
                path,
                std::io::Error::from_raw_os_error(libc::EIO),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod quiet_tests {
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// Pending until released; keeps the waker of its last poll.
    struct Operation {
        polls: Rc<Cell<usize>>,
        waker: Rc<RefCell<Option<Waker>>>,
        done: Rc<Cell<bool>>,
    }

    impl Future for Operation {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.set(self.polls.get() + 1);
            if self.done.get() {
                return Poll::Ready(());
            }
            *self.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    struct Counter(AtomicUsize);

    impl ArcWake for Counter {
        fn wake_by_ref(counter: &Arc<Self>) {
            counter.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A task woken 100,000 times by other events polls a pending
    /// operation once; the operation's wake-up reaches the task, and the
    /// next poll finishes it.
    #[test]
    fn a_pending_operation_is_polled_only_after_it_woke() {
        let polls = Rc::new(Cell::new(0));
        let waker = Rc::new(RefCell::new(None));
        let done = Rc::new(Cell::new(false));
        let mut op = quiet(Operation {
            polls: Rc::clone(&polls),
            waker: Rc::clone(&waker),
            done: Rc::clone(&done),
        });
        let task = Arc::new(Counter(AtomicUsize::new(0)));
        let task_waker = futures::task::waker(Arc::clone(&task));
        let mut cx = Context::from_waker(&task_waker);
        for _ in 0..100_000 {
            assert!(Pin::new(&mut op).poll(&mut cx).is_pending());
        }
        assert_eq!(polls.get(), 1);
        done.set(true);
        let woken = waker.borrow_mut().take().unwrap();
        woken.wake();
        assert_eq!(task.0.load(Ordering::Relaxed), 1, "the task was woken");
        assert!(Pin::new(&mut op).poll(&mut cx).is_ready());
        assert_eq!(polls.get(), 2);
    }
}

/// What this thread's executor did since it started: time running tasks,
/// the same with io_uring submission and completion, and tasks run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ExecutorTotals {
    pub tasks_time: std::time::Duration,
    pub busy_time: std::time::Duration,
    pub tasks: u64,
}

thread_local! {
    static EXECUTOR_TOTALS: std::cell::Cell<ExecutorTotals> =
        std::cell::Cell::new(ExecutorTotals::default());
}

/// This executor's [`ExecutorTotals`] (call it on an executor's thread).
/// glommio hands out what accrued since it was last asked; the totals add
/// up here.
pub(crate) fn executor_totals() -> ExecutorTotals {
    let taken = glommio::executor().executor_stats();
    EXECUTOR_TOTALS.with(|totals| {
        let mut sum = totals.get();
        sum.tasks_time += taken.executor_runtime();
        sum.busy_time += taken.total_runtime();
        sum.tasks += taken.tasks_executed();
        totals.set(sum);
        sum
    })
}
