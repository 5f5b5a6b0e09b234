//! This shard's I/O sizing (the executor thread's): writes in flight per
//! partition and the write buffer's size, from the io-properties file
//! `shardlog tune iotune` measured (`serve`'s `io-properties-file`), else
//! the built-in defaults. Set once when a shard starts, before its logs
//! open.

use std::cell::Cell;

use crate::limits::{BLOCK_BYTES, WRITE_BUFFER_BYTES_DEFAULT, WRITES_IN_FLIGHT_MAX};

thread_local! {
    static WRITES_IN_FLIGHT: Cell<usize> = const { Cell::new(WRITES_IN_FLIGHT_MAX) };
    static WRITE_BUFFER_BYTES: Cell<usize> = const { Cell::new(WRITE_BUFFER_BYTES_DEFAULT) };
}

/// Sets this shard's writes in flight per partition (at least 1) and its
/// logs' default write buffer (a whole number of blocks, at least one).
pub fn set_io_tuning(writes_in_flight: usize, write_buffer_bytes: usize) {
    WRITES_IN_FLIGHT.with(|w| w.set(writes_in_flight.max(1)));
    let block = BLOCK_BYTES as usize;
    WRITE_BUFFER_BYTES.with(|w| w.set(write_buffer_bytes.max(block).next_multiple_of(block)));
}

pub(crate) fn writes_in_flight() -> usize {
    WRITES_IN_FLIGHT.with(Cell::get)
}

pub(crate) fn write_buffer_bytes() -> usize {
    WRITE_BUFFER_BYTES.with(Cell::get)
}
