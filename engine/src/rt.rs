//! Running engine code: the executor every shard (and every test) runs on,
//! and the clock. With `io` this is the only place that names glommio.

use std::future::Future;
use std::time::Duration;

use crate::limits::{IO_MEMORY_BYTES_MAX, IO_MEMORY_BYTES_MIN};

/// A running executor thread.
pub struct ExecutorHandle<T: Send + 'static> {
    name: String,
    handle: glommio::ExecutorJoinHandle<T>,
}

impl<T: Send + 'static> std::fmt::Debug for ExecutorHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecutorHandle")
            .field("name", &self.name)
            .finish()
    }
}

impl<T: Send + 'static> ExecutorHandle<T> {
    /// Waits for the executor's main future to finish and returns its output.
    pub fn join(self) -> std::io::Result<T> {
        let name = self.name;
        self.handle
            .join()
            .map_err(|e| std::io::Error::other(format!("executor {name:?} failed: {e}")))
    }
}

/// Starts a single-threaded io_uring executor on a new thread, pinned to
/// `cpu` if given, running the future `make` returns.
///
/// Fails if the executor cannot start, most often because the memlock limit
/// (`ulimit -l`) is below the 512 KiB glommio needs for its rings.
pub fn spawn_executor<T, F, G>(
    name: &str,
    cpu: Option<usize>,
    make: G,
) -> std::io::Result<ExecutorHandle<T>>
where
    G: FnOnce() -> F + Send + 'static,
    F: Future<Output = T> + 'static,
    T: Send + 'static,
{
    spawn_with_io_memory(name, cpu, io_memory_bytes(), make)
}

fn spawn_with_io_memory<T, F, G>(
    name: &str,
    cpu: Option<usize>,
    io_memory: usize,
    make: G,
) -> std::io::Result<ExecutorHandle<T>>
where
    G: FnOnce() -> F + Send + 'static,
    F: Future<Output = T> + 'static,
    T: Send + 'static,
{
    let placement = match cpu {
        Some(cpu) => glommio::Placement::Fixed(cpu),
        None => glommio::Placement::Unbound,
    };
    let builder = glommio::LocalExecutorBuilder::new(placement)
        .name(name)
        .io_memory(io_memory)
        .ring_depth(128);
    let handle = builder
        .spawn(move || async move {
            crate::io::spawn_detached(keep_awake());
            make().await
        })
        .map_err(|e| {
        std::io::Error::other(format!(
            "cannot start the io_uring executor {name:?}: {e} (is `ulimit -l` at least 512 KiB?)"
        ))
    })?;
    Ok(ExecutorHandle {
        name: name.to_string(),
        handle,
    })
}

/// How often an executor wakes up whatever it waits for.
const KEEP_AWAKE_PERIOD: Duration = Duration::from_millis(100);

/// Bounds a lost wakeup to [`KEEP_AWAKE_PERIOD`]: a timer that always comes
/// due makes a sleeping reactor look again. It was added for a log open or
/// close that hung until anything interrupted the sleep (a debugger
/// attaching woke it after 12 minutes, and it went on), taken then for a
/// blocking-pool completion glommio missed. That shape is the executor
/// parking with woken tasks queued (vendor/glommio/PATCHES.md 4, fixed
/// there), which this timer could not bound when its own task was among
/// the queued ones. It stays as a bound for any other lost wake-up, at ten
/// wake-ups a second per executor.
async fn keep_awake() {
    loop {
        sleep(KEEP_AWAKE_PERIOD).await;
    }
}

/// Runs the future `make` returns on a new executor thread and waits for it.
pub fn run_on_executor<T, F, G>(name: &str, cpu: Option<usize>, make: G) -> std::io::Result<T>
where
    G: FnOnce() -> F + Send + 'static,
    F: Future<Output = T> + 'static,
    T: Send + 'static,
{
    spawn_executor(name, cpu, make)?.join()
}

/// Like [`run_on_executor`], for a network client that does no direct I/O
/// (the load generator's): it registers the smallest io_uring memory, so
/// dozens of them do not pin gigabytes.
pub fn run_on_client_executor<T, F, G>(name: &str, make: G) -> std::io::Result<T>
where
    G: FnOnce() -> F + Send + 'static,
    F: Future<Output = T> + 'static,
    T: Send + 'static,
{
    spawn_with_io_memory(name, None, IO_MEMORY_BYTES_MIN, make)?.join()
}

/// Polls `future` only when it asked to be woken, with a waker of its own:
/// for a runtime future awaited next to others that wake often (see
/// `io::quiet` for why glommio needs it).
pub fn quiet<F: Future>(future: F) -> impl Future<Output = F::Output> {
    crate::io::quiet(future)
}

/// Spawns housekeeping (log cleaning) into the executor's background
/// queue: a small CPU share, so requests go first when both have work.
pub fn spawn_background(fut: impl Future<Output = ()> + 'static) {
    crate::io::spawn_background(fut);
}

pub use crate::io::ExecutorTotals;

/// What this executor did since it started (call it on an executor).
pub fn executor_totals() -> ExecutorTotals {
    crate::io::executor_totals()
}

/// Runs `work` off the executor, on its blocking pool (key derivation,
/// anything that would hold a shard for milliseconds), and gives its
/// result.
pub fn spawn_blocking<F, R>(work: F) -> impl Future<Output = R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    crate::io::spawn_blocking(work)
}

/// Sleeps on the current executor.
pub async fn sleep(duration: Duration) {
    crate::io::sleep(duration).await;
}

/// Wall-clock milliseconds since the Unix epoch (timestamps, segment.ms).
pub fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// How much io_uring memory to register per executor: the large pool when
/// this process may lock that much memory, the small one otherwise.
fn io_memory_bytes() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the rlimit we pass and reads nothing else.
    let known = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } == 0;
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let roomy = known
        && (limit.rlim_cur == libc::RLIM_INFINITY
            || limit.rlim_cur >= 4 * IO_MEMORY_BYTES_MAX as u64);
    if root || roomy {
        IO_MEMORY_BYTES_MAX
    } else {
        IO_MEMORY_BYTES_MIN
    }
}
