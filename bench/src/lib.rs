//! The load generator and comparison harness (not built yet).
//!
//! What will live here: `shardlog bench run` and `shardlog bench compare`
//! (open-loop schedules, coordinated-omission-corrected HdrHistograms, a
//! native pipelined driver and a librdkafka driver, JSON and HTML reports).
//! The criterion micro-benchmarks of the storage hot paths live beside the
//! code they measure, in `engine/benches/`.
