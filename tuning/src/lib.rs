//! OS tuning for the broker (not built yet).
//!
//! What will live here: checks and fixes for the settings a broker needs
//! (memlock for io_uring registered buffers, file descriptor limits, CPU
//! governor, IRQ affinity), `iotune`-style disk measurement, and the tuned
//! I/O properties file that `shardlog serve` reads.
