//! The pre-decode walk's promise, measured: for every request table, every
//! version, generated bodies (valid, with extreme counts and lengths, cut
//! at every field boundary), whenever the walk lets a body through,
//! `kafka-protocol` allocates no more heap decoding it than the walk said.
//! A global allocator counts this thread's allocations. No test harness:
//! `main` turns off anyhow's backtraces first (a captured backtrace is heap
//! the decoder does not own), while the process has one thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::Bytes;
use net::protocol::schema::generate::{self, Rng, Shape};
use net::protocol::schema::{
    CONSUMER_PROTOCOL_ASSIGNMENT, CONSUMER_PROTOCOL_SUBSCRIPTION, Message, REQUESTS, check,
};

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

const SEED: u64 = 0xdec0_deb0;

fn allocated_by(f: impl FnOnce()) -> usize {
    let before = ALLOCATED.with(Cell::get);
    f();
    ALLOCATED.with(Cell::get) - before
}

fn every_message() -> impl Iterator<Item = &'static Message> {
    REQUESTS
        .iter()
        .copied()
        .chain([CONSUMER_PROTOCOL_SUBSCRIPTION, CONSUMER_PROTOCOL_ASSIGNMENT])
}

/// Checks one body: if the walk passes it, decoding stays within the walk's
/// bound. Returns whether the walk passed it.
fn within_bound(message: &'static Message, version: i16, body: &[u8]) -> bool {
    let Ok(checked) = check(message, version, body) else {
        return false;
    };
    let mut buf = Bytes::copy_from_slice(body);
    let used = allocated_by(|| {
        let _ = (message.decode)(&mut buf, version);
    });
    assert!(
        used <= checked.decoded_bytes,
        "{} v{version}: decoding took {used} bytes, the walk allowed {} ({} body bytes: {:02x?}...)",
        message.name,
        checked.decoded_bytes,
        body.len(),
        body.get(..64).unwrap_or(body)
    );
    true
}

fn decoding_what_the_walk_passes_allocates_no_more_than_it_said() {
    eprintln!("seed {SEED:#x}");
    let mut rng = Rng::new(SEED);
    let many = Shape {
        elements_max: 12,
        length_max: 3,
        tagged_one_in: 1,
        ..Shape::default()
    };
    let (mut passed, mut total) = (0usize, 0usize);
    for message in every_message() {
        for version in message.versions.min..=message.versions.max {
            for _ in 0..6 {
                let body = generate::body(message, version, Shape::default(), &mut rng);
                let mut bodies = vec![body.bytes.clone()];
                bodies.extend(generate::extreme_variants(&body));
                bodies.extend(generate::truncations(&body).into_iter().map(<[u8]>::to_vec));
                // Larger bodies, whole: many elements, every tagged field.
                bodies.push(generate::body(message, version, many, &mut rng).bytes);
                for bytes in bodies {
                    total += 1;
                    passed += usize::from(within_bound(message, version, &bytes));
                }
            }
        }
    }
    eprintln!("{passed} of {total} bodies passed the walk and decoded within its bound");
    assert!(passed > 1000);
}

/// Unknown tagged fields cost the decoder a map entry each: a body made of
/// thousands of them stays within the bound too.
fn thousands_of_unknown_tagged_fields_stay_within_the_bound() {
    let heartbeat = net::protocol::schema::request(kafka_protocol::messages::ApiKey::Heartbeat)
        .expect("Heartbeat has a table");
    // Heartbeat v4: group_id "g", generation 1, member_id "m", instance null,
    // then the tagged fields.
    let mut body = vec![2, b'g', 0, 0, 0, 1, 2, b'm', 0];
    let count: u32 = 5000;
    let varint = |mut v: u32, out: &mut Vec<u8>| {
        while v >= 0x80 {
            out.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    };
    varint(count, &mut body);
    for tag in 0..count {
        varint(100 + tag, &mut body);
        varint(1, &mut body);
        body.push(0xab);
    }
    assert!(within_bound(heartbeat, 4, &body));
}

fn main() {
    // SAFETY: no other thread exists yet.
    unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    decoding_what_the_walk_passes_allocates_no_more_than_it_said();
    thousands_of_unknown_tagged_fields_stay_within_the_bound();
    eprintln!("decode_bounds: 2 checks passed");
}
