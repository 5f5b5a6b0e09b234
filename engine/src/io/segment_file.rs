//! Segment files for direct I/O, and the shard's bound on their open
//! descriptors.
//!
//! A [`SegmentFile`] is opened (or created) when it is made, and its
//! descriptor may be closed in between operations: each shard keeps at most
//! `open-segment-files-per-shard` segment descriptors open, active and
//! sealed alike, and closes the least recently used past that; the next
//! operation on a closed one opens it again by its path. So a broker with
//! more partitions than it may open files keeps serving them all (paying an
//! open for a partition that was idle), instead of failing with EMFILE. An
//! operation holds its descriptor until it completes: a close for the bound
//! waits for the operations under way.
//!
//! A file whose path may come to name another file, or none (a segment being
//! removed or replaced while readers hold it), is [`SegmentFile::keep_open`]:
//! the bound never closes it, so it is read as the file it was.

use std::cell::{Cell, RefCell};
use std::io;
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};

use glommio::io::{DmaBuffer, DmaFile, OpenOptions};

use super::{io_err, probe_device, quiet};
use crate::IoError;
use crate::lru::Lru;

/// A segment file for direct I/O, read and write. See the module docs.
#[derive(Debug)]
pub(crate) struct SegmentFile {
    path: PathBuf,
    slot: Rc<Slot>,
}

/// A segment file's descriptor, when it is open.
#[derive(Debug)]
struct Slot {
    id: u64,
    file: RefCell<Option<Rc<DmaFile>>>,
    /// Never closed for the bound ([`SegmentFile::keep_open`]).
    kept: Cell<bool>,
}

/// An aligned buffer to write with [`SegmentFile::write_at`].
#[derive(Debug)]
pub(crate) struct WriteBuf(DmaBuffer);

impl WriteBuf {
    pub(crate) fn as_mut(&mut self) -> &mut [u8] {
        self.0.as_bytes_mut()
    }
    pub(crate) fn as_slice(&self) -> &[u8] {
        self.0.as_bytes()
    }
    /// Shrinks the buffer to its first `len` bytes (a multiple of the block).
    pub(crate) fn trim(&mut self, len: usize) {
        self.0.trim_to_size(len);
    }
}

/// Bytes read from a file; shares its buffer with every slice taken of it,
/// on any thread (the buffer is the global allocator's: a Fetch answered on
/// another shard sends the same bytes).
#[derive(Debug, Clone)]
pub struct ReadBuf(bytes::Bytes);

impl ReadBuf {
    /// A sub-slice sharing the same buffer, or `None` if out of range.
    pub fn slice(&self, at: usize, len: usize) -> Option<ReadBuf> {
        let end = at.checked_add(len)?;
        (end <= self.0.len()).then(|| ReadBuf(self.0.slice(at..end)))
    }

    /// The bytes, shared (no copy).
    pub fn to_bytes(&self) -> bytes::Bytes {
        self.0.clone()
    }
}

impl std::ops::Deref for ReadBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// Opens a segment file for read and write. Files from `DmaFile::create`
/// are write-only, so segments use OpenOptions.
async fn open_dma(path: &Path, create: bool) -> Result<DmaFile, IoError> {
    #[cfg(test)]
    super::failpoint::check("open", path)?;
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .dma_open(path)
        .await
        .map_err(io_err("open", path))
}

impl SegmentFile {
    /// Opens (creating if asked) a segment file.
    pub(crate) async fn open(path: &Path, create: bool) -> Result<SegmentFile, IoError> {
        probe_device(path).await?;
        let file = Rc::new(open_dma(path, create).await?);
        let slot = Rc::new(Slot {
            id: DESCRIPTORS.with(|d| d.borrow_mut().next_id()),
            file: RefCell::new(Some(file)),
            kept: Cell::new(false),
        });
        DESCRIPTORS.with(|d| d.borrow_mut().used(&slot));
        Ok(SegmentFile {
            path: path.to_path_buf(),
            slot,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The open descriptor, opened again if the bound closed it.
    async fn dma(&self) -> Result<Rc<DmaFile>, IoError> {
        let open = self.slot.file.borrow().clone();
        if let Some(file) = open {
            DESCRIPTORS.with(|d| d.borrow_mut().used(&self.slot));
            return Ok(file);
        }
        let file = Rc::new(open_dma(&self.path, false).await?);
        // Another operation may have opened it meanwhile: one descriptor.
        let raced = self.slot.file.borrow().clone();
        if let Some(theirs) = raced {
            drop(file);
            DESCRIPTORS.with(|d| d.borrow_mut().used(&self.slot));
            return Ok(theirs);
        }
        *self.slot.file.borrow_mut() = Some(Rc::clone(&file));
        DESCRIPTORS.with(|d| {
            let mut d = d.borrow_mut();
            d.reopens += 1;
            d.used(&self.slot);
        });
        Ok(file)
    }

    /// Keeps the descriptor open (opened now if it was closed) until the
    /// file is closed or dropped, whatever the bound: for a file whose path
    /// is about to name another file, or none, while readers still hold it.
    pub(crate) async fn keep_open(&self) -> Result<(), IoError> {
        self.dma().await?;
        self.slot.kept.set(true);
        DESCRIPTORS.with(|d| d.borrow_mut().forget(self.slot.id));
        Ok(())
    }

    /// A buffer to write with [`SegmentFile::write_at`], from the
    /// executor's allocator (the registered pool when there is one; no
    /// descriptor needed).
    pub(crate) fn alloc(&self, len: usize) -> WriteBuf {
        WriteBuf(glommio::allocate_dma_buffer(len))
    }

    /// Writes the whole of `buf` at `position`; both are block aligned.
    pub(crate) async fn write_at(&self, buf: WriteBuf, position: u64) -> Result<(), IoError> {
        #[cfg(test)]
        super::failpoint::check("write", &self.path)?;
        self.write_whole(buf, position).await
    }

    async fn write_whole(&self, buf: WriteBuf, position: u64) -> Result<(), IoError> {
        let len = buf.0.len();
        let file = self.dma().await?;
        let written = quiet(file.write_at(buf.0, position)).await;
        self.whole(written, len)
    }

    /// A write's outcome: all of its `len` bytes written, or an error.
    fn whole(&self, written: glommio::Result<usize, ()>, len: usize) -> Result<(), IoError> {
        let written = written.map_err(io_err("write", &self.path))?;
        if written != len {
            let e = io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short write: {written} of {len} bytes"),
            );
            return Err(IoError::new("write", &self.path, e));
        }
        Ok(())
    }

    /// Reads up to `len` bytes at `position` (fewer at the end of the file).
    pub(crate) async fn read_at(&self, position: u64, len: usize) -> Result<ReadBuf, IoError> {
        let file = self.dma().await?;
        let read = quiet(file.read_at_owned(position, len))
            .await
            .map_err(io_err("read", &self.path))?;
        crate::stats::record_segment_read(read.as_bytes().len());
        Ok(ReadBuf(bytes::Bytes::from_owner(read)))
    }

    /// Makes the file's data durable. Through any descriptor of the file:
    /// the kernel syncs the file, not what one descriptor wrote.
    pub(crate) async fn fdatasync(&self) -> Result<(), IoError> {
        #[cfg(test)]
        super::failpoint::check("fdatasync", &self.path)?;
        let file = self.dma().await?;
        quiet(file.fdatasync())
            .await
            .map_err(io_err("fdatasync", &self.path))
    }

    /// Allocates the file's blocks up to `len` (fallocate, growing the size
    /// when it is smaller; blocks read as zeros until written).
    pub(crate) async fn pre_allocate(&self, len: u64) -> Result<(), IoError> {
        #[cfg(test)]
        super::failpoint::check("fallocate", &self.path)?;
        let file = self.dma().await?;
        quiet(file.pre_allocate(len, false))
            .await
            .map_err(io_err("fallocate", &self.path))
    }

    /// Writes zeros over `from..to` (block aligned), growing the file: its
    /// blocks are then allocated and written, so later writes into them are
    /// pure overwrites.
    pub(crate) async fn write_zeros(&self, from: u64, to: u64) -> Result<(), IoError> {
        #[cfg(test)]
        super::failpoint::check("zeros", &self.path)?;
        let len = (to - from) as usize;
        let Some(zeros) = shared_zeros(len) else {
            let mut buf = self.alloc(len);
            buf.as_mut().fill(0);
            return self.write_whole(buf, from).await;
        };
        let file = self.dma().await?;
        let written = quiet(file.write_rc_at(zeros, from)).await;
        self.whole(written, len)
    }

    pub(crate) async fn truncate(&self, len: u64) -> Result<(), IoError> {
        let file = self.dma().await?;
        quiet(file.truncate(len))
            .await
            .map_err(io_err("truncate", &self.path))
    }

    pub(crate) async fn size(&self) -> Result<u64, IoError> {
        let file = self.dma().await?;
        quiet(file.file_size())
            .await
            .map_err(io_err("stat", &self.path))
    }

    /// Closes the descriptor, if it is open (after the operations still
    /// under way on it, if any: then the close reports nothing).
    pub(crate) async fn close(self) -> Result<(), IoError> {
        DESCRIPTORS.with(|d| d.borrow_mut().forget(self.slot.id));
        let Some(file) = self.slot.file.borrow_mut().take() else {
            return Ok(());
        };
        match Rc::try_unwrap(file) {
            Ok(file) => quiet(file.close())
                .await
                .map_err(io_err("close", &self.path)),
            Err(_) => Ok(()),
        }
    }
}

impl Drop for SegmentFile {
    fn drop(&mut self) {
        // Not at thread exit, when the bound's state may be gone already.
        let _ = DESCRIPTORS.try_with(|d| {
            if let Ok(mut d) = d.try_borrow_mut() {
                d.forget(self.slot.id);
            }
        });
    }
}

/// The longest zero-ahead write ([`SegmentFile::write_zeros`]).
const ZEROS_BYTES_MAX: usize = crate::limits::SEGMENT_ZERO_AHEAD_BYTES as usize;

/// An executor (by id) and its shared blocks of zeros, by length.
type SharedZeros = (Option<usize>, Vec<(usize, Rc<DmaBuffer>)>);

thread_local! {
    static SHARED_ZEROS: RefCell<SharedZeros> = const { RefCell::new((None, Vec::new())) };
}

/// This executor's block of `len` zeros (a power of two up to
/// `SEGMENT_ZERO_AHEAD_BYTES`, the lengths of zero-ahead steps), which every
/// zero-ahead write of that length sends (the kernel only reads it): a few
/// allocations per shard, not one per write in flight (1,000 partitions
/// starting at once held a mebibyte each), and no fill per write. `None`
/// for other lengths (a step cut at a segment's end).
fn shared_zeros(len: usize) -> Option<Rc<DmaBuffer>> {
    if !len.is_power_of_two() || len > ZEROS_BYTES_MAX {
        return None;
    }
    let executor = glommio::executor().id();
    SHARED_ZEROS.with(|zeros| {
        let mut zeros = zeros.borrow_mut();
        if zeros.0 != Some(executor) {
            *zeros = (Some(executor), Vec::new());
        }
        if let Some((_, buf)) = zeros.1.iter().find(|(size, _)| *size == len) {
            return Some(Rc::clone(buf));
        }
        let mut buf = glommio::allocate_dma_buffer(len);
        buf.as_bytes_mut().fill(0);
        let buf = Rc::new(buf);
        zeros.1.push((len, Rc::clone(&buf)));
        Some(buf)
    })
}

/// A shard's open segment descriptors, least recently used first.
#[derive(Debug)]
struct Descriptors {
    /// The executor these are of (an executor that ended on this thread
    /// leaves its entries behind: they are not this one's).
    executor: Option<usize>,
    /// The open descriptors, one each, under the bound.
    open: Lru<Weak<Slot>>,
    ids: u64,
    /// Descriptors opened again after the bound closed them.
    reopens: u64,
}

thread_local! {
    static DESCRIPTORS: RefCell<Descriptors> = RefCell::new(Descriptors {
        executor: None,
        open: Lru::new(crate::limits::SEGMENT_FILES_SHARD_DEFAULT, |_| 1),
        ids: 0,
        reopens: 0,
    });
}

impl Descriptors {
    fn next_id(&mut self) -> u64 {
        self.ids += 1;
        self.ids
    }

    /// Forgets what another executor on this thread left.
    fn this_executor(&mut self) {
        let executor = Some(glommio::executor().id());
        if self.executor != executor {
            self.executor = executor;
            self.open.clear();
        }
    }

    /// A descriptor used (or just opened): the most recently used now;
    /// the least recently used past the limit are closed (never this one:
    /// it was used last).
    fn used(&mut self, slot: &Rc<Slot>) {
        self.this_executor();
        if slot.kept.get() {
            return;
        }
        let (_, evicted) = self.open.insert(slot.id, Rc::downgrade(slot));
        for weak in evicted {
            // Closed through the ring once the operations under way on it
            // drop it (glommio closes a dropped file).
            if let Some(slot) = weak.upgrade() {
                slot.file.borrow_mut().take();
            }
        }
    }

    fn forget(&mut self, id: u64) {
        self.open.remove(id);
    }
}

/// Sets this shard's bound on open segment descriptors (at least one).
pub(crate) fn set_descriptor_limit(limit: usize) {
    DESCRIPTORS.with(|d| d.borrow_mut().open.limit = limit.max(1));
}

/// This shard's segment descriptors: how many are open under the bound (a
/// kept one is not counted), and how many the bound closed were opened
/// again since the shard began.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DescriptorUsage {
    pub open: usize,
    pub reopens: u64,
}

pub(crate) fn descriptor_usage() -> DescriptorUsage {
    DESCRIPTORS.with(|d| {
        let d = d.borrow();
        DescriptorUsage {
            open: d.open.len(),
            reopens: d.reopens,
        }
    })
}
