//! Every bound the engine enforces, in one place. Units are last in names.

/// Kafka's `max.message.bytes` default: the largest record batch accepted.
pub const MAX_MESSAGE_BYTES_DEFAULT: u32 = 1_048_588;
/// Kafka's `segment.bytes` default (1 GiB).
pub const SEGMENT_BYTES_DEFAULT: u64 = 1 << 30;
/// Segment files address positions with `u32` in the offset index.
pub const SEGMENT_BYTES_MAX: u64 = (1 << 31) - 1;
/// A segment must hold at least one maximal batch header and then some.
pub const SEGMENT_BYTES_MIN: u64 = 14;
/// Kafka's `segment.ms` default (7 days).
pub const SEGMENT_MS_DEFAULT: u64 = 7 * 24 * 60 * 60 * 1000;
/// Kafka's `retention.ms` default (7 days).
pub const RETENTION_MS_DEFAULT: u64 = 7 * 24 * 60 * 60 * 1000;
/// Kafka's `delete.retention.ms` default (1 day): how long compaction keeps
/// a tombstone.
pub const DELETE_RETENTION_MS_DEFAULT: u64 = 24 * 60 * 60 * 1000;
/// The most bytes one batch's records may decompress to when the broker
/// reads them (recompression, timestamp checks): a compressed batch is at
/// most max.message.bytes, and the decoder stops here rather than follow a
/// decompression bomb.
pub const DECOMPRESSED_BYTES_MAX: usize = 64 << 20;
/// Kafka's `index.interval.bytes` default: bytes between offset index entries.
pub const INDEX_INTERVAL_BYTES_DEFAULT: u32 = 4096;
/// Bytes of recently appended batches each partition keeps in memory for reads.
pub const TAIL_CACHE_BYTES_DEFAULT: usize = 8 << 20;
/// Bytes the tail caches of one shard hold together unless the broker sets
/// a budget (`serve` does: a share of the machine's memory).
pub const TAIL_CACHE_SHARD_BYTES_DEFAULT: usize = 256 << 20;
/// Bytes of sealed segments' indexes one shard keeps in memory unless the
/// broker sets a budget (`index-cache-bytes-per-shard`): about 5 bytes per
/// KiB of log at the default index interval, so 64 MiB index the busiest
/// 13 GB a shard reads; the rest are read from their files when needed.
pub const INDEX_CACHE_SHARD_BYTES_DEFAULT: usize = 64 << 20;
/// Segment files, active and sealed, one shard keeps open unless the
/// broker sets a bound (`open-segment-files-per-shard`; serve's default is a
/// share of the open files limit): past it the least recently used are
/// closed, and opened again when next used.
pub const SEGMENT_FILES_SHARD_DEFAULT: usize = 1024;
/// Partitions a shard opens (at start) or closes (at stop) at once: each
/// is a few small file operations, overlapped in io_uring.
pub const LOGS_OPENED_AT_ONCE: usize = 64;
/// Size of one aligned staging buffer; full buffers are written concurrently.
pub const WRITE_BUFFER_BYTES_DEFAULT: usize = 1 << 20;
/// Writes one log keeps in flight at once.
pub const WRITES_IN_FLIGHT_MAX: usize = 32;
/// Bytes of the active segment allocated (fallocate) ahead of its writes:
/// a direct write that grows the file allocates blocks and moves its size
/// on the write path; inside allocated space it only fills them (1 MiB
/// appends under an interval flush: +20-30%, at the disk's bandwidth; see
/// docs/benchmarks.md). Never past `segment.bytes`; a roll or close
/// truncates to the exact size.
pub const SEGMENT_PREALLOCATE_BYTES: u64 = 8 << 20;
/// The smallest write that allocates ahead (a filled staging buffer, or a
/// large batch): small durable writes run no faster in allocated space.
pub const PREALLOCATE_WRITE_BYTES_MIN: usize = 256 << 10;
/// Bytes of the active segment written with zeros ahead of small writes.
/// Into written blocks a small direct write is a pure overwrite: ext4 does
/// it inline under a shared lock (io_uring does not hand it to a kernel
/// worker) and its fdatasync has no extent to convert and no size to
/// record, only the device cache to flush (fio, 4 KiB writes + fdatasync:
/// sync 99 us against 207 us into a growing file; docs/benchmarks.md).
/// Zeros cost one large write per this many bytes of small ones. This is
/// the largest step: a segment's first is `SEGMENT_ZERO_AHEAD_BYTES_MIN`,
/// and each next one is twice the last, so a partition that writes little
/// writes few zeros (10,000 partitions at 2 messages a second each had
/// 10 GB of zeros to write before their data at 1 MiB each). 128 KiB, not
/// 1 MiB: with 16 partitions at 50,000 msgs/s (omb) the publish p99 was
/// 38-61 ms at 1 MiB steps and 23-25 ms at 128 KiB (docs/benchmarks.md).
pub const SEGMENT_ZERO_AHEAD_BYTES: u64 = 128 << 10;
/// The first zero-ahead step of a segment.
pub const SEGMENT_ZERO_AHEAD_BYTES_MIN: u64 = 32 << 10;
/// Bytes read from disk per I/O when scanning a segment during recovery.
pub const RECOVERY_READ_BYTES: usize = 1 << 20;
/// Bytes a shard reads ahead for readers behind the tail cache, by
/// default (`read-ahead-bytes-per-shard`): a Fetch's worth (1 MiB per
/// partition, Kafka clients' default) for each of 64 partitions.
pub const READ_AHEAD_SHARD_BYTES_DEFAULT: usize = 64 << 20;
/// Smallest disk read when serving a fetch: one read covers the index gap.
pub const READ_BYTES_MIN: usize = 64 << 10;
/// Direct I/O alignment: the physical block size of the devices we run on.
pub const BLOCK_BYTES: u64 = 4096;
/// Bytes of registered io_uring memory per executor when memory may be
/// locked freely (root, or an unlimited `ulimit -l`): staging buffers come
/// from it, pre-faulted and reused, instead of fresh heap pages.
pub const IO_MEMORY_BYTES_MAX: usize = 64 << 20;
/// Registered memory per executor otherwise: fits the default unprivileged
/// 8 MiB memlock budget across glommio's three rings.
pub const IO_MEMORY_BYTES_MIN: usize = 1 << 20;
/// Staged but unwritten bytes per partition before appends wait for the
/// flusher (backpressure instead of growth).
pub const STAGED_BYTES_MAX: u64 = 32 << 20;

const _: () = assert!((WRITE_BUFFER_BYTES_DEFAULT as u64).is_multiple_of(BLOCK_BYTES));
const _: () = assert!(SEGMENT_BYTES_DEFAULT <= SEGMENT_BYTES_MAX);
const _: () = assert!(SEGMENT_PREALLOCATE_BYTES.is_multiple_of(BLOCK_BYTES));
