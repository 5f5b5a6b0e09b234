//! Sealed segments, and what a shard keeps of them in memory: a bounded
//! cache of their indexes and of their open data files.
//!
//! A sealed segment's indexes are in its `.index` and `.timeindex` files,
//! written when it was sealed; its data file is opened when it is read. The
//! shard's cache holds the indexes it loaded (LRU, under a byte budget) and
//! the files it opened (LRU, under a count), so memory and open files follow
//! the budget and the data being read, not the data retained (Kafka maps its
//! index files and lets the kernel page them out; shardlog reads them with
//! the rest of its I/O and decides itself what stays).
//!
//! A reader asks the segment's [`SegmentStore`] for [`Handles`] (the file
//! and its indexes, from the cache or loaded) and holds them while it reads:
//! an eviction, or the segment's removal, never pulls them from under it.
//! What removes or replaces a sealed segment's files (retention, the
//! cleaner's and the merger's swaps) first [`SegmentStore::retire`]s it: its
//! handles are pinned to the store, so a reader that found it before the
//! swap reads the old file (unlinked, still open) with its own indexes, never
//! the new file with the old positions.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::segment::{SegmentMeta, index_path, log_path, time_index_path};
use crate::index::{IndexError, OffsetIndex, TimeIndex};
use crate::io::{self, SegmentFile};
use crate::limits::{INDEX_CACHE_SHARD_BYTES_DEFAULT, SEGMENT_FILES_SHARD_DEFAULT};
use crate::lru::Lru;
use crate::recovery::scan_segment;
use crate::{IoError, Offset};

/// A sealed segment's two sparse indexes.
#[derive(Debug, Default)]
pub(crate) struct Indexes {
    pub offsets: OffsetIndex,
    pub times: TimeIndex,
}

impl Indexes {
    /// Decodes and checks a sealed segment's index files (of a segment of
    /// `size` bytes holding `span` offsets).
    pub(crate) fn decode(
        offsets: &[u8],
        times: &[u8],
        size: u64,
        span: u64,
    ) -> Result<Indexes, IndexError> {
        Ok(Indexes {
            offsets: OffsetIndex::decode(offsets, size.max(1), span)?,
            times: TimeIndex::decode(times, span)?,
        })
    }

    /// What the cache charges for them: their entries and a fixed overhead.
    fn bytes(&self) -> usize {
        const OVERHEAD: usize = 128;
        self.offsets.entries().len() * 8 + self.times.len() * 12 + OVERHEAD
    }
}

/// What a read of a sealed segment holds while it reads.
#[derive(Debug, Clone)]
pub(crate) struct Handles {
    pub file: Rc<SegmentFile>,
    pub indexes: Rc<Indexes>,
}

/// A segment that no longer changes: its bounds in memory, its file and
/// indexes through the shard's cache.
#[derive(Debug)]
pub(crate) struct SealedSegment {
    /// Bounds, size and timestamps; the indexes here are empty (they are
    /// the store's).
    pub meta: SegmentMeta,
    pub store: Rc<SegmentStore>,
}

impl SealedSegment {
    /// A segment sealed on disk at `dir`: `meta`'s indexes go to the cache
    /// (they were just written, and are likely read next).
    pub(crate) fn new(dir: &Path, mut meta: SegmentMeta, file: Option<Rc<SegmentFile>>) -> Self {
        let indexes = Indexes {
            offsets: std::mem::take(&mut meta.offset_index),
            times: std::mem::take(&mut meta.time_index),
        };
        let store = SegmentStore::new(dir, &meta);
        CACHE.with(|c| {
            let mut cache = c.borrow_mut();
            cache.indexes.insert(store.id, Rc::new(indexes));
            if let Some(file) = file {
                cache.files.insert(store.id, file);
            }
        });
        SealedSegment { meta, store }
    }

    /// A segment found at open, its indexes left on disk.
    pub(crate) fn unloaded(dir: &Path, meta: SegmentMeta) -> Self {
        let store = SegmentStore::new(dir, &meta);
        SealedSegment { meta, store }
    }
}

/// A sealed segment's files, as the shard's cache holds them. Dropping it
/// (the last reader of a removed segment done) drops its cache entries.
#[derive(Debug)]
pub(crate) struct SegmentStore {
    id: u64,
    dir: PathBuf,
    base: Offset,
    /// Offsets in the segment (its relative offsets are below this).
    span: u64,
    size: u64,
    /// Set by [`SegmentStore::retire`]: the handles of a segment whose
    /// files are being removed or replaced.
    pinned: RefCell<Option<Handles>>,
}

impl SegmentStore {
    fn new(dir: &Path, meta: &SegmentMeta) -> Rc<SegmentStore> {
        Rc::new(SegmentStore {
            id: CACHE.with(|c| c.borrow_mut().next_id()),
            dir: dir.to_path_buf(),
            base: meta.base_offset,
            span: (meta.next_offset.0 - meta.base_offset.0).max(0) as u64,
            size: meta.size,
            pinned: RefCell::new(None),
        })
    }

    pub(crate) fn path(&self) -> PathBuf {
        log_path(&self.dir, self.base)
    }

    /// The file and indexes, from the cache or loaded into it.
    pub(crate) async fn handles(&self) -> Result<Handles, IoError> {
        if let Some(handles) = self.pinned() {
            return Ok(handles);
        }
        let loaded = async {
            let file = self.open().await?;
            let indexes = match CACHE.with(|c| c.borrow_mut().indexes.get(self.id)) {
                Some(indexes) => indexes,
                None => self.load_indexes(&file).await?,
            };
            Ok(Handles { file, indexes })
        };
        let loaded = loaded.await;
        self.pinned_after(loaded, |h| h)
    }

    /// The open data file, from the cache or opened into it.
    pub(crate) async fn file(&self) -> Result<Rc<SegmentFile>, IoError> {
        if let Some(handles) = self.pinned() {
            return Ok(handles.file);
        }
        let opened = self.open().await;
        self.pinned_after(opened, |h| h.file)
    }

    fn pinned(&self) -> Option<Handles> {
        self.pinned.borrow().clone()
    }

    /// What a load that awaited gives: if the segment was retired meanwhile,
    /// its files may be the replacement's or gone, so the pinned handles
    /// (the segment's own) instead, and what the load cached goes.
    fn pinned_after<T>(
        &self,
        loaded: Result<T, IoError>,
        pick: impl FnOnce(Handles) -> T,
    ) -> Result<T, IoError> {
        match self.pinned() {
            Some(handles) => {
                CACHE.with(|c| c.borrow_mut().remove(self.id));
                Ok(pick(handles))
            }
            None => loaded,
        }
    }

    async fn open(&self) -> Result<Rc<SegmentFile>, IoError> {
        if let Some(file) = CACHE.with(|c| c.borrow_mut().files.get(self.id)) {
            return Ok(file);
        }
        let file = Rc::new(SegmentFile::open(&self.path(), false).await?);
        CACHE.with(|c| c.borrow_mut().opens += 1);
        Ok(CACHE.with(|c| c.borrow_mut().files.insert(self.id, file).0))
    }

    /// Reads and checks the index files; a damaged one is rebuilt from the
    /// log in memory, with a log line, at each load (the file is not
    /// rewritten here: a swap may be replacing it; removing it makes the
    /// next open rebuild it). The files are read and checked on the executor's blocking pool: a
    /// large segment's are megabytes (a 1 GiB segment of 4 KiB batches:
    /// 5 MB), milliseconds the shard would not serve anything else.
    async fn load_indexes(&self, file: &SegmentFile) -> Result<Rc<Indexes>, IoError> {
        let (offsets, times) = (
            index_path(&self.dir, self.base),
            time_index_path(&self.dir, self.base),
        );
        let (size, span) = (self.size, self.span);
        let decoded = io::spawn_blocking(move || {
            let read = |path: &Path| {
                std::fs::read(path).map_err(|e| IndexError::Unreadable(e.kind().to_string()))
            };
            Indexes::decode(&read(&offsets)?, &read(&times)?, size, span)
        })
        .await;
        let indexes = match decoded {
            Ok(indexes) => indexes,
            Err(e) => {
                tracing::warn!(path = %self.path().display(), error = %e, "index rejected; scanning the segment");
                let interval = crate::limits::INDEX_INTERVAL_BYTES_DEFAULT;
                let mut meta = scan_segment(file, self.base, interval, 0).await?.meta;
                meta.next_offset = self.base.plus(self.span as i64);
                meta.finish_time_index();
                Indexes {
                    offsets: meta.offset_index,
                    times: meta.time_index,
                }
            }
        };
        CACHE.with(|c| c.borrow_mut().loads += 1);
        Ok(CACHE.with(|c| c.borrow_mut().indexes.insert(self.id, Rc::new(indexes)).0))
    }

    /// Before the segment's files are removed or replaced: pins its file
    /// (opened if it was not) and its indexes (empty if they were not
    /// loaded: a reader then scans from the start) to the store and takes
    /// them out of the cache. Readers that hold the store read the old
    /// segment whole.
    pub(crate) async fn retire(&self) -> Result<(), IoError> {
        if self.pinned.borrow().is_some() {
            return Ok(());
        }
        let file = self.open().await?;
        // Its path is about to name another file, or none: the bound on
        // open descriptors must not close this one.
        file.keep_open().await?;
        if self.pinned.borrow().is_some() {
            return Ok(());
        }
        let indexes = CACHE
            .with(|c| c.borrow_mut().indexes.get(self.id))
            .unwrap_or_default();
        CACHE.with(|c| c.borrow_mut().remove(self.id));
        *self.pinned.borrow_mut() = Some(Handles { file, indexes });
        Ok(())
    }

    /// Drops what the cache holds of the segment (its log closing); the
    /// file closes once no reader holds it.
    pub(crate) fn forget(&self) -> Option<Rc<SegmentFile>> {
        let file = CACHE.with(|c| c.borrow_mut().remove(self.id));
        let pinned = self.pinned.borrow_mut().take().map(|h| h.file);
        file.or(pinned)
    }
}

impl Drop for SegmentStore {
    fn drop(&mut self) {
        // Not at thread exit, when the cache may be gone already.
        let _ = CACHE.try_with(|c| {
            if let Ok(mut cache) = c.try_borrow_mut() {
                cache.remove(self.id);
            }
        });
    }
}

/// A shard's cache of sealed segments' indexes (weighed in bytes) and open
/// files (one each; an evicted file closes once its readers are done).
#[derive(Debug)]
struct Cache {
    indexes: Lru<Rc<Indexes>>,
    files: Lru<Rc<SegmentFile>>,
    ids: u64,
    loads: u64,
    opens: u64,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::new());
}

impl Cache {
    fn new() -> Cache {
        Cache {
            indexes: Lru::new(INDEX_CACHE_SHARD_BYTES_DEFAULT, |i| i.bytes()),
            files: Lru::new(SEGMENT_FILES_SHARD_DEFAULT, |_| 1),
            ids: 0,
            loads: 0,
            opens: 0,
        }
    }

    fn next_id(&mut self) -> u64 {
        self.ids += 1;
        self.ids
    }

    /// Drops both entries of a segment; its file, if it was cached.
    fn remove(&mut self, id: u64) -> Option<Rc<SegmentFile>> {
        self.indexes.remove(id);
        self.files.remove(id)
    }
}

/// Sets this shard's bounds: bytes of sealed segments' indexes in memory,
/// and segment files open at once, active and sealed (at least one; the
/// least recently used are closed past it, and opened again when used).
pub fn set_segment_cache_limits(index_bytes: usize, open_files: usize) {
    CACHE.with(|c| {
        let mut cache = c.borrow_mut();
        cache.indexes.limit = index_bytes;
        cache.files.limit = open_files.max(1);
    });
    io::set_descriptor_limit(open_files);
}

/// What this shard's segment cache holds and has done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SegmentCacheUsage {
    pub index_bytes: usize,
    pub index_bytes_limit: usize,
    pub indexes: usize,
    /// Sealed segment files the cache holds (their descriptors may be
    /// closed by the bound on open segment files).
    pub open_files: usize,
    pub open_files_limit: usize,
    /// Index loads from disk and sealed data files opened, since the shard
    /// began.
    pub index_loads: u64,
    pub file_opens: u64,
    /// Segment descriptors open (active and sealed) under the bound of
    /// `open_files_limit`, and those the bound closed that were opened
    /// again when next used, since the shard began.
    pub descriptors: usize,
    pub descriptor_reopens: u64,
}

pub fn segment_cache_usage() -> SegmentCacheUsage {
    let descriptors = io::descriptor_usage();
    CACHE.with(|c| {
        let cache = c.borrow();
        SegmentCacheUsage {
            descriptors: descriptors.open,
            descriptor_reopens: descriptors.reopens,
            index_bytes: cache.indexes.held(),
            index_bytes_limit: cache.indexes.limit,
            indexes: cache.indexes.len(),
            open_files: cache.files.len(),
            open_files_limit: cache.files.limit,
            index_loads: cache.loads,
            file_opens: cache.opens,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn indexes_of(entries: u32) -> Rc<Indexes> {
        let mut offsets = OffsetIndex::default();
        for i in 0..entries {
            offsets.push(crate::index::OffsetEntry {
                relative_offset: i,
                position: i * 100,
            });
        }
        Rc::new(Indexes {
            offsets,
            times: TimeIndex::default(),
        })
    }

    /// The least recently used go first, whatever was inserted when; the
    /// bytes held never pass the budget; a use moves an entry to the back.
    #[test]
    fn the_cache_keeps_the_most_recently_used_under_its_budget() {
        let one = indexes_of(100).bytes();
        let mut cache = Cache::new();
        cache.indexes.limit = 3 * one;
        for id in 1..=3 {
            cache.indexes.insert(id, indexes_of(100));
        }
        assert_eq!(cache.indexes.held(), 3 * one);
        assert!(cache.indexes.get(1).is_some(), "1 is now the most recent");
        cache.indexes.insert(4, indexes_of(100));
        assert!(cache.indexes.contains(1) && !cache.indexes.contains(2));
        assert!(cache.indexes.get(1).is_some(), "1 again, after 4");
        cache.indexes.insert(5, indexes_of(150));
        assert!(
            cache.indexes.held() <= cache.indexes.limit,
            "{}",
            cache.indexes.held()
        );
        assert_eq!(cache.indexes.len(), 2, "3 and 4 made room, 1 stays");
        assert!(cache.indexes.contains(1) && cache.indexes.contains(5));
        // Larger than the whole budget: kept by its reader, not by the cache.
        let (huge, _) = cache.indexes.insert(6, indexes_of(2_000));
        assert_eq!(huge.offsets.entries().len(), 2_000);
        assert!(cache.indexes.held() <= cache.indexes.limit);
        cache.remove(1);
        cache.remove(5);
        assert_eq!((cache.indexes.held(), cache.indexes.len()), (0, 0));
    }

    /// A load under way when the segment is retired (its file replaced
    /// under the same name, as the cleaner's swap does) ends with the
    /// segment's own file and indexes, never the replacement's.
    #[test]
    fn a_load_a_retirement_overtook_takes_the_pinned_handles() {
        crate::rt::run_on_executor("sealed", None, || async {
            set_segment_cache_limits(0, 1);
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("t-0");
            std::fs::create_dir(&dir).unwrap();
            let base = Offset(0);
            std::fs::write(log_path(&dir, base), [1u8; 4096]).unwrap();
            std::fs::write(index_path(&dir, base), []).unwrap();
            std::fs::write(time_index_path(&dir, base), []).unwrap();
            let mut meta = SegmentMeta::empty(base, 0);
            meta.size = 4096;
            meta.next_offset = Offset(10);
            let segment = SealedSegment::unloaded(&dir, meta);
            let mut load = Box::pin(segment.store.handles());
            assert!(futures::poll!(&mut load).is_pending(), "the open waits");
            segment.store.retire().await.unwrap();
            let pinned = segment.store.pinned().unwrap();
            let replacement = dir.join("replacement");
            std::fs::write(&replacement, [2u8; 4096]).unwrap();
            std::fs::rename(&replacement, log_path(&dir, base)).unwrap();
            let loaded = load.await.unwrap();
            assert!(Rc::ptr_eq(&loaded.file, &pinned.file));
            assert!(Rc::ptr_eq(&loaded.indexes, &pinned.indexes));
            let bytes = loaded.file.read_at(0, 4096).await.unwrap();
            assert!(bytes.iter().all(|&b| b == 1), "the old file");
            let again = segment.store.handles().await.unwrap();
            assert!(Rc::ptr_eq(&again.file, &pinned.file));
            let usage = segment_cache_usage();
            assert_eq!((usage.open_files, usage.indexes), (0, 0), "{usage:?}");
        })
        .unwrap();
    }
}
