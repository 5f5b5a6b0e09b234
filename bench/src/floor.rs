//! `shardlog bench floor`: what the kernel and the device charge for the
//! work one durable produce needs, on this machine, with no broker around
//! it. A broker's CPU per message is compared with this floor, measured in
//! the same session (machines here are shared and noisy).
//!
//! Three loops at a fixed rate (open loop, paced by sleeping; blocking
//! calls, nothing spins), each alone:
//!
//! 1. `loopback`: a request of `request_bytes` over loopback TCP (both ends
//!    `TCP_NODELAY`), answered with `response_bytes`: a 1 KiB Produce and
//!    its response, or a Fetch.
//! 2. `disk`: an `O_DIRECT` write of `write_bytes` at the next block of a
//!    file whose blocks are already written (a pure overwrite, as the
//!    engine's small writes are), then `fdatasync`.
//! 3. `durable`: both in one: the server thread reads a request, writes it
//!    and syncs it, then answers. A synchronous one-partition broker that
//!    does nothing else.
//!
//! Each reports this process's CPU per operation (user + system over all
//! its threads, as `bench run --broker-pid` measures a broker: client and
//! server ends both), every process's CPU per operation (with the kernel
//! threads that complete I/O and interrupts, which no user process is
//! charged for), and the latency of each operation.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::histogram::Latency;
use crate::procfs::{self, Sample};

/// `shardlog bench floor`.
#[derive(Debug, Clone, clap::Args)]
pub struct FloorArgs {
    /// A directory on the disk to measure (a temporary file is written
    /// there and removed).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Operations per second.
    #[arg(long, default_value_t = 5_000)]
    pub rate: u64,
    /// Seconds per loop.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Bytes of each request (a 1 KiB record in a Produce is ~1,100).
    #[arg(long, default_value_t = 1_100)]
    pub request_bytes: usize,
    /// Bytes of each response.
    #[arg(long, default_value_t = 64)]
    pub response_bytes: usize,
    /// Bytes of each durable write (a multiple of 4 KiB).
    #[arg(long, default_value_t = 4_096)]
    pub write_bytes: usize,
}

/// One loop's result.
#[derive(Debug)]
pub struct FloorRow {
    pub name: &'static str,
    pub operations: u64,
    pub seconds: f64,
    /// This process's CPU microseconds per operation (both ends).
    pub process_cpu_us: f64,
    /// The serving end's (a broker's share): the server thread's, or the
    /// whole process's where there is no server (`disk`).
    pub server_cpu_us: f64,
    /// Every process's CPU microseconds per operation.
    pub machine_cpu_us: f64,
    pub latency: Latency,
}

const BLOCK: usize = 4096;
/// The file's size: writes go round it, over blocks already written.
const FILE_BYTES: u64 = 16 << 20;

/// Runs the three loops and prints a table.
pub fn run(args: &FloorArgs) -> anyhow::Result<()> {
    let rows = measure(args)?;
    println!(
        "{} operations/s, {} s each, request {} B, response {} B, write {} B + fdatasync in {}",
        args.rate,
        args.duration,
        args.request_bytes,
        args.response_bytes,
        args.write_bytes,
        args.dir.display()
    );
    println!(
        "{:<9} {:>8} {:>15} {:>13} {:>11}  latency",
        "loop", "ops/s", "server CPU µs", "both ends µs", "all CPU µs"
    );
    for row in &rows {
        println!(
            "{:<9} {:>8.0} {:>15.1} {:>13.1} {:>11.1}  {}",
            row.name,
            row.operations as f64 / row.seconds.max(f64::EPSILON),
            row.server_cpu_us,
            row.process_cpu_us,
            row.machine_cpu_us,
            row.latency.summary()
        );
    }
    Ok(())
}

/// The three loops, in order: loopback, disk, durable.
pub fn measure(args: &FloorArgs) -> anyhow::Result<Vec<FloorRow>> {
    anyhow::ensure!(
        args.write_bytes >= BLOCK && args.write_bytes.is_multiple_of(BLOCK),
        "--write-bytes must be a multiple of {BLOCK}"
    );
    anyhow::ensure!(
        args.rate > 0 && args.duration > 0.0,
        "--rate and --duration must be positive"
    );
    anyhow::ensure!(
        args.request_bytes > 0 && args.response_bytes > 0,
        "requests and responses need at least a byte"
    );
    let operations = ((args.rate as f64 * args.duration).ceil() as u64).max(1);
    let disk = DiskFile::create(&args.dir, args.write_bytes)?;
    let loopback = timed("loopback", operations, || {
        exchange_loop(args, operations, None)
    })?;
    let disk_row = timed("disk", operations, || {
        let mut disk = disk.try_clone()?;
        Ok((paced(operations, args.rate, |_| disk.write_next())?, None))
    })?;
    let durable = timed("durable", operations, || {
        exchange_loop(args, operations, Some(disk.try_clone()?))
    })?;
    Ok(vec![loopback, disk_row, durable])
}

/// Runs `body` (which returns the latencies of `operations` operations and
/// its server thread's CPU seconds, if it has one) and charges it the CPU
/// it took.
fn timed(
    name: &'static str,
    operations: u64,
    body: impl FnOnce() -> anyhow::Result<(Latency, Option<f64>)>,
) -> anyhow::Result<FloorRow> {
    let pid = std::process::id();
    let process_before = Sample::take(pid).context("reading /proc/self")?;
    let machine_before = machine_busy_seconds()?;
    let start = Instant::now();
    let (latency, server_seconds) = body()?;
    let seconds = start.elapsed().as_secs_f64();
    let process_after = Sample::take(pid).context("reading /proc/self")?;
    let machine_after = machine_busy_seconds()?;
    let per_op = |seconds: f64| seconds / operations as f64 * 1e6;
    let process_seconds = process_after.cpu_seconds() - process_before.cpu_seconds();
    Ok(FloorRow {
        name,
        operations,
        seconds,
        process_cpu_us: per_op(process_seconds),
        server_cpu_us: per_op(server_seconds.unwrap_or(process_seconds)),
        machine_cpu_us: per_op(busy_between(&machine_before, &machine_after)),
        latency,
    })
}

/// Calls `op(i)` for `i` in `0..operations`, the `i`th due at `start + i /
/// rate`, and records each one's latency from its due time.
fn paced(
    operations: u64,
    rate: u64,
    mut op: impl FnMut(u64) -> anyhow::Result<()>,
) -> anyhow::Result<Latency> {
    let mut latency = Latency::new();
    let start = Instant::now();
    for i in 0..operations {
        let due = start + Duration::from_nanos(i.saturating_mul(1_000_000_000) / rate);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        op(i)?;
        latency.record(due.elapsed());
    }
    Ok(latency)
}

/// Request/response over loopback; with `disk`, the server writes and
/// syncs each request before it answers. Returns the latencies and the
/// server thread's CPU seconds.
fn exchange_loop(
    args: &FloorArgs,
    operations: u64,
    disk: Option<DiskFile>,
) -> anyhow::Result<(Latency, Option<f64>)> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1")?;
    let address = listener.local_addr()?;
    let (request_bytes, response_bytes) = (args.request_bytes, args.response_bytes);
    let server = std::thread::spawn(move || -> anyhow::Result<f64> {
        let (mut socket, _) = listener.accept()?;
        socket.set_nodelay(true)?;
        let mut request = vec![0u8; request_bytes];
        let response = vec![1u8; response_bytes];
        let mut disk = disk;
        for _ in 0..operations {
            socket.read_exact(&mut request)?;
            if let Some(disk) = disk.as_mut() {
                disk.write_next()?;
            }
            socket.write_all(&response)?;
        }
        thread_cpu_seconds()
    });
    let mut client = TcpStream::connect(address).context("connecting over loopback")?;
    client.set_nodelay(true)?;
    let request = vec![2u8; request_bytes];
    let mut response = vec![0u8; response_bytes];
    let latency = paced(operations, args.rate, |_| {
        client.write_all(&request)?;
        client.read_exact(&mut response)?;
        Ok(())
    });
    drop(client);
    let served = server
        .join()
        .map_err(|_| anyhow::anyhow!("the loopback server thread panicked"))?;
    // The server's failure (a write or sync refused) is the cause of the
    // client's (the connection it closed): report it first.
    let server_seconds = served?;
    Ok((latency?, Some(server_seconds)))
}

/// The calling thread's user plus system CPU seconds so far.
fn thread_cpu_seconds() -> anyhow::Result<f64> {
    procfs::cpu_seconds("/proc/thread-self/stat").context("reading /proc/thread-self/stat")
}

/// The CPU seconds of every process on the machine so far, kernel threads
/// (interrupt work, io_uring's and the block layer's workers) included, by
/// process id. From /proc/PID/stat, whose totals are exact even where the
/// kernel samples user and system time by tick (/proc/stat's busy counters
/// miss short bursts between idle periods, so they are no use here).
fn machine_busy_seconds() -> anyhow::Result<HashMap<u32, f64>> {
    let mut busy = HashMap::new();
    for entry in std::fs::read_dir("/proc").context("reading /proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(seconds) = procfs::cpu_seconds(&format!("/proc/{pid}/stat")) {
            busy.insert(pid, seconds);
        }
    }
    Ok(busy)
}

/// The CPU seconds the machine's processes used between two samples. A
/// process that exited meanwhile took its total with it (a plain sum of
/// the two would go backwards on a busy machine): only processes alive at
/// the end count, from 0 if they started meanwhile (or their id was
/// taken again).
fn busy_between(before: &HashMap<u32, f64>, after: &HashMap<u32, f64>) -> f64 {
    after
        .iter()
        .map(|(pid, &now)| {
            let then = before.get(pid).copied().unwrap_or(0.0);
            if now >= then { now - then } else { now }
        })
        .sum()
}

/// A file of `FILE_BYTES` already written, overwritten `write_bytes` at a
/// time round and round, each write followed by fdatasync.
#[derive(Debug)]
struct DiskFile {
    file: File,
    path: PathBuf,
    owner: bool,
    buffer: AlignedBuffer,
    position: u64,
}

impl DiskFile {
    fn create(dir: &Path, write_bytes: usize) -> anyhow::Result<DiskFile> {
        let path = dir.join(format!("shardlog-floor-{}.tmp", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path)
            .with_context(|| format!("creating {} with O_DIRECT", path.display()))?;
        let disk = DiskFile {
            file,
            path,
            owner: true,
            buffer: AlignedBuffer::new(write_bytes)?,
            position: 0,
        };
        // Every block written once and synced: the loops overwrite.
        let fill = AlignedBuffer::new(1 << 20)?;
        let mut at = 0;
        while at < FILE_BYTES {
            disk.file.write_all_at(fill.as_slice(), at)?;
            at += fill.as_slice().len() as u64;
        }
        disk.file.sync_all()?;
        Ok(disk)
    }

    fn try_clone(&self) -> anyhow::Result<DiskFile> {
        Ok(DiskFile {
            file: self.file.try_clone()?,
            path: self.path.clone(),
            owner: false,
            buffer: AlignedBuffer::new(self.buffer.as_slice().len())?,
            position: 0,
        })
    }

    fn write_next(&mut self) -> anyhow::Result<()> {
        let len = self.buffer.as_slice().len() as u64;
        if self.position + len > FILE_BYTES {
            self.position = 0;
        }
        self.file
            .write_all_at(self.buffer.as_slice(), self.position)
            .context("O_DIRECT write")?;
        self.file.sync_data().context("fdatasync")?;
        self.position += len;
        Ok(())
    }
}

impl Drop for DiskFile {
    fn drop(&mut self) {
        if self.owner {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A zeroed, block-aligned buffer for O_DIRECT.
#[derive(Debug)]
struct AlignedBuffer {
    ptr: std::ptr::NonNull<u8>,
    layout: std::alloc::Layout,
}

impl AlignedBuffer {
    fn new(len: usize) -> anyhow::Result<AlignedBuffer> {
        let layout = std::alloc::Layout::from_size_align(len.max(BLOCK), BLOCK)?;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr = std::ptr::NonNull::new(ptr).context("allocating an aligned buffer")?;
        Ok(AlignedBuffer { ptr, layout })
    }

    fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` holds `layout.size()` initialised (zeroed) bytes
        // for as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.layout.size()) }
    }
}

impl Drop for AlignedBuffer {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

// SAFETY: the buffer is owned, never aliased, and only read.
unsafe impl Send for AlignedBuffer {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_loop_completes_its_operations_and_leaves_no_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let args = FloorArgs {
            dir: dir.path().to_path_buf(),
            rate: 400,
            duration: 0.25,
            request_bytes: 1_100,
            response_bytes: 64,
            write_bytes: 4_096,
        };
        let rows = measure(&args).expect("floor loops");
        let names: Vec<&str> = rows.iter().map(|r| r.name).collect();
        assert_eq!(names, ["loopback", "disk", "durable"]);
        for row in &rows {
            assert_eq!(row.operations, 100, "{}", row.name);
            assert_eq!(row.latency.count(), 100, "{}", row.name);
            // Paced at 400/s: 100 operations take at least 0.2475 s.
            assert!(row.seconds >= 0.24, "{}: {} s", row.name, row.seconds);
            assert!(row.process_cpu_us >= row.server_cpu_us, "{}", row.name);
            assert!(row.server_cpu_us >= 0.0 && row.machine_cpu_us >= 0.0);
        }
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .expect("read dir")
            .collect::<Result<_, _>>()
            .expect("entries");
        assert!(left.is_empty(), "the floor's file is removed: {left:?}");
    }

    #[test]
    fn write_bytes_must_be_whole_blocks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let args = FloorArgs {
            dir: dir.path().to_path_buf(),
            rate: 100,
            duration: 0.1,
            request_bytes: 100,
            response_bytes: 10,
            write_bytes: 1_000,
        };
        let error = measure(&args).expect_err("1,000 bytes is not a block multiple");
        assert!(error.to_string().contains("multiple of 4096"), "{error}");
    }
}
