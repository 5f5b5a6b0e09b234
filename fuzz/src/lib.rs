//! What the fuzz targets run (`fuzz_targets/`), with a global allocator
//! that counts allocations so every target checks the pre-decode walk's
//! bound as well as the absence of panics.
//!
//! Run one: `cargo +nightly fuzz run request_delete_records` (every API
//! has a `request_<api>` target; `frame` takes whole frames, headers
//! included; `record_batch` takes Produce record bytes). Seeds: `cargo run
//! --manifest-path fuzz/Cargo.toml --bin seed_corpus` writes
//! `fuzz/corpus/<target>/` from the captured client requests in
//! `net/tests/golden/` and bodies generated from the request tables.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use net::protocol::schema::{self, Message};

struct Counting;

thread_local! {
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the counter is a const-initialised
// thread-local without a destructor, so touching it never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATED.try_with(|a| a.set(a.get().saturating_add(layout.size())));
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is System's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATED.try_with(|a| a.set(a.get().saturating_add(new_size)));
        // SAFETY: the caller's contract is System's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocated_by(f: impl FnOnce()) -> usize {
    let before = ALLOCATED.with(Cell::get);
    f();
    ALLOCATED.with(Cell::get) - before
}

/// Walks a body; if the walk passes, decodes it and checks the decoder
/// allocated no more than the walk said.
fn walk_then_decode(message: &'static Message, version: i16, body: &[u8]) {
    let Ok(checked) = schema::check(message, version, body) else {
        return;
    };
    let mut buf = Bytes::copy_from_slice(body);
    let used = allocated_by(|| {
        let _ = (message.decode)(&mut buf, version);
    });
    assert!(
        used <= checked.decoded_bytes,
        "{} v{version}: decoding took {used} bytes, the walk allowed {}",
        message.name,
        checked.decoded_bytes
    );
}

/// A `request_<api>` target: the first byte picks the version (within the
/// table's), the rest is the body.
pub fn request(api_key: ApiKey, data: &[u8]) {
    disable_backtraces();
    let message = schema::request(api_key).expect("the API has a request table");
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let span = (message.versions.max - message.versions.min + 1) as u8;
    let version = message.versions.min + i16::from(first % span);
    walk_then_decode(message, version, body);
}

/// The `frame` target: a whole request frame without its size prefix, as
/// the connection hands it over; decoded bodies are decoded as a handler
/// would.
pub fn frame(data: &[u8]) {
    disable_backtraces();
    let Ok(request) = net::frame::decode_request(Bytes::copy_from_slice(data)) else {
        return;
    };
    let Some(message) = schema::request(request.api_key) else {
        return;
    };
    if message.versions.contains(request.version()) {
        walk_then_decode(message, request.version(), &request.body);
    }
}

/// The `record_batch` target: Produce record bytes through the validator,
/// and the records of every batch it accepts.
pub fn record_batch(data: &[u8]) {
    use engine::batch::{ValidateMode, validate};
    let mode = ValidateMode::Produce {
        max_message_bytes: 1 << 20,
    };
    for batch in validate(data, 0, mode) {
        let Ok((position, batch)) = batch else {
            return;
        };
        let whole = &data[position..position + batch.size()];
        let _ = engine::batch::records::records(whole);
    }
}

/// anyhow would capture a backtrace for every decode error when
/// RUST_BACKTRACE is set: heap the decoder does not own.
fn disable_backtraces() {
    use std::sync::Once;
    static ONCE: Once = Once::new();
    // SAFETY: libFuzzer runs targets on one thread; this runs before any
    // anyhow error reads the variable.
    ONCE.call_once(|| unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") });
}
