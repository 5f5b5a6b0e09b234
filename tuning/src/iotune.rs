//! `shardlog tune iotune --dir DIR`: the data disk measured as the broker
//! uses it (O_DIRECT, as Seastar's iotune does): sequential write and read
//! bandwidth of 1 MiB blocks at queue depths 1 to 32, 4 KiB random read
//! and write IOPS at depth 32, and the latency of a 4 KiB write plus
//! fdatasync at depths 1, 4 and 16. The result goes to an io-properties
//! file (TOML) that `serve` reads (`io-properties-file`): the queue depth
//! past which writes gain less than a tenth becomes its writes in flight
//! per partition.
//!
//! Queue depth is threads here (each a blocking pread/pwrite): simple, and
//! on a device the measurement is what the device does at that many
//! outstanding requests.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BLOCK: usize = 4096;
const LARGE: usize = 1 << 20;
/// Queue depths the bandwidths are measured at.
pub const DEPTHS: [usize; 6] = [1, 2, 4, 8, 16, 32];
const SYNC_DEPTHS: [usize; 3] = [1, 4, 16];

/// How long and how large.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// The test file's size.
    pub file_bytes: u64,
    /// Each measurement's duration.
    pub step: Duration,
}

/// What iotune found.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IoProperties {
    pub dir: String,
    /// Sequential 1 MiB writes: bytes/s per queue depth ([`DEPTHS`]).
    pub write_bandwidth: Vec<(usize, u64)>,
    /// Sequential 1 MiB reads: bytes/s per queue depth.
    pub read_bandwidth: Vec<(usize, u64)>,
    /// 4 KiB random reads and writes per second at depth 32.
    pub read_iops: u64,
    pub write_iops: u64,
    /// 4 KiB write + fdatasync: (depth, p50 µs, p99 µs).
    pub fdatasync_us: Vec<(usize, u64, u64)>,
    /// What `serve` uses: writes in flight per partition, and its write
    /// buffer (the size of each write).
    pub writes_in_flight: usize,
    pub write_buffer_bytes: usize,
}

/// A page-aligned buffer for O_DIRECT.
struct Aligned {
    ptr: *mut u8,
    layout: std::alloc::Layout,
}

impl Aligned {
    fn new(len: usize) -> Aligned {
        let layout = std::alloc::Layout::from_size_align(len, BLOCK).expect("a valid layout");
        // SAFETY: the layout has a non-zero size; the memory is zeroed.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "out of memory");
        Aligned { ptr, layout }
    }

    fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` holds `layout.size()` initialized bytes we own.
        unsafe { std::slice::from_raw_parts(self.ptr, self.layout.size()) }
    }

    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, and `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.layout.size()) }
    }
}

impl Drop for Aligned {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) };
    }
}

fn open_direct(path: &Path, create: bool) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .custom_flags(libc::O_DIRECT)
        .open(path)
}

/// Runs `depth` threads, each calling `op(thread, round)` until `step`
/// has passed; returns the operations done and the time taken.
fn at_depth(
    depth: usize,
    step: Duration,
    op: Arc<dyn Fn(usize, u64) -> std::io::Result<()> + Send + Sync>,
) -> std::io::Result<(u64, Duration)> {
    let started = Instant::now();
    let threads: Vec<_> = (0..depth)
        .map(|thread| {
            let op = Arc::clone(&op);
            std::thread::spawn(move || -> std::io::Result<u64> {
                let mut done = 0u64;
                while started.elapsed() < step {
                    op(thread, done)?;
                    done += 1;
                }
                Ok(done)
            })
        })
        .collect();
    let mut total = 0;
    for t in threads {
        total += t
            .join()
            .map_err(|_| std::io::Error::other("a measuring thread panicked"))??;
    }
    Ok((total, started.elapsed()))
}

/// A deterministic sequence of block numbers below `blocks`.
fn scatter(seed: u64, round: u64, blocks: u64) -> u64 {
    let mut x = seed
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(round.wrapping_mul(0xbf58_476d_1ce4_e5b9));
    x ^= x >> 31;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 29;
    x % blocks.max(1)
}

/// Measures the disk under `dir` (a file `iotune.tmp` there, removed after).
pub fn measure(dir: &Path, budget: Budget) -> std::io::Result<IoProperties> {
    let path = dir.join("iotune.tmp");
    let result = measure_file(&path, dir, budget);
    let _ = std::fs::remove_file(&path);
    for depth in SYNC_DEPTHS {
        for i in 0..depth {
            let _ = std::fs::remove_file(dir.join(format!("iotune-sync-{i}.tmp")));
        }
    }
    result
}

fn measure_file(path: &Path, dir: &Path, budget: Budget) -> std::io::Result<IoProperties> {
    let file_bytes =
        (budget.file_bytes / LARGE as u64).max(DEPTHS[DEPTHS.len() - 1] as u64) * LARGE as u64;
    let file = Arc::new(open_direct(path, true)?);
    // Lay the file down once (its blocks allocated and written: the
    // measurements overwrite, as the broker's preallocated segments do).
    let mut buf = Aligned::new(LARGE);
    for (i, b) in buf.as_mut().iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    let mut at = 0u64;
    while at < file_bytes {
        file.write_all_at(buf.as_slice(), at)?;
        at += LARGE as u64;
    }
    file.sync_all()?;
    let large_blocks = file_bytes / LARGE as u64;
    let mut write_bandwidth = Vec::new();
    let mut read_bandwidth = Vec::new();
    for depth in DEPTHS {
        // Each thread its own region, written and read sequentially.
        let region = large_blocks / depth as u64;
        for write in [true, false] {
            let f = Arc::clone(&file);
            let op: Arc<dyn Fn(usize, u64) -> std::io::Result<()> + Send + Sync> =
                Arc::new(move |thread, round| {
                    let offset = (thread as u64 * region + round % region) * LARGE as u64;
                    let mut buf = Aligned::new(LARGE);
                    if write {
                        f.write_all_at(buf.as_slice(), offset)
                    } else {
                        f.read_exact_at(buf.as_mut(), offset)
                    }
                });
            let (ops, took) = at_depth(depth, budget.step, op)?;
            if write {
                file.sync_data()?;
            }
            let rate = ops * LARGE as u64 * 1000 / took.as_millis().max(1) as u64;
            if write {
                write_bandwidth.push((depth, rate));
            } else {
                read_bandwidth.push((depth, rate));
            }
        }
    }
    let small_blocks = file_bytes / BLOCK as u64;
    let mut iops = [0u64; 2];
    for (slot, write) in [(0, false), (1, true)] {
        let f = Arc::clone(&file);
        let op: Arc<dyn Fn(usize, u64) -> std::io::Result<()> + Send + Sync> =
            Arc::new(move |thread, round| {
                let offset = scatter(thread as u64, round, small_blocks) * BLOCK as u64;
                let mut buf = Aligned::new(BLOCK);
                if write {
                    f.write_all_at(buf.as_slice(), offset)
                } else {
                    f.read_exact_at(buf.as_mut(), offset)
                }
            });
        let (ops, took) = at_depth(32, budget.step, op)?;
        iops[slot] = ops * 1000 / took.as_millis().max(1) as u64;
    }
    file.sync_data()?;
    let mut fdatasync_us = Vec::new();
    for depth in SYNC_DEPTHS {
        fdatasync_us.push(sync_latency(dir, depth, budget.step)?);
    }
    let best = write_bandwidth.iter().map(|w| w.1).max().unwrap_or(0);
    // The shallowest depth within a tenth of the best.
    let writes_in_flight = write_bandwidth
        .iter()
        .find(|w| w.1 * 10 >= best * 9)
        .map_or(DEPTHS[DEPTHS.len() - 1], |w| w.0);
    Ok(IoProperties {
        dir: dir.display().to_string(),
        write_bandwidth,
        read_bandwidth,
        read_iops: iops[0],
        write_iops: iops[1],
        fdatasync_us,
        writes_in_flight,
        write_buffer_bytes: LARGE,
    })
}

/// (depth, p50 µs, p99 µs) of a 4 KiB write plus fdatasync, each thread
/// appending to its own file.
fn sync_latency(dir: &Path, depth: usize, step: Duration) -> std::io::Result<(usize, u64, u64)> {
    let files: Vec<Arc<File>> = (0..depth)
        .map(|i| open_direct(&dir.join(format!("iotune-sync-{i}.tmp")), true).map(Arc::new))
        .collect::<std::io::Result<_>>()?;
    let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (files, recorded) = (Arc::new(files), Arc::clone(&samples));
    let op: Arc<dyn Fn(usize, u64) -> std::io::Result<()> + Send + Sync> =
        Arc::new(move |thread, round| {
            let file = &files[thread];
            let buf = Aligned::new(BLOCK);
            let started = Instant::now();
            // Within the first MiB, over and over: the size settles and
            // each sync is the data and the device flush.
            file.write_all_at(buf.as_slice(), (round % 256) * BLOCK as u64)?;
            file.sync_data()?;
            let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            recorded
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .push(us);
            Ok(())
        });
    at_depth(depth, step, op)?;
    let mut samples = samples
        .lock()
        .map_err(|_| std::io::Error::other("poisoned"))?
        .clone();
    samples.sort_unstable();
    let at = |q: f64| {
        let i = ((samples.len() as f64 * q) as usize).min(samples.len().saturating_sub(1));
        samples.get(i).copied().unwrap_or(0)
    };
    Ok((depth, at(0.5), at(0.99)))
}

/// The io-properties file's text.
pub fn to_toml(properties: &IoProperties) -> String {
    let header = "# Written by `shardlog tune iotune`; read by `shardlog serve` \
                  (config key io-properties-file).\n";
    format!(
        "{header}{}",
        toml::to_string(properties).unwrap_or_default()
    )
}

/// Reads an io-properties file.
pub fn read(path: &Path) -> Result<IoProperties, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Where `tune iotune` writes by default: beside the data.
pub fn default_path(dir: &Path) -> PathBuf {
    dir.join("io-properties.toml")
}
