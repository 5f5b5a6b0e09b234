//! Every bound the protocol front end enforces. Units are last in names.

/// Kafka's `socket.request.max.bytes` default (100 MiB): larger frames are
/// refused before their bytes are read or allocated.
pub const REQUEST_BYTES_MAX: usize = 100 << 20;
/// Connections one shard accepts at once; more wait in the kernel backlog.
pub const CONNECTIONS_MAX_PER_SHARD: usize = 10_000;
