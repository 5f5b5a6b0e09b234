//! Every bound the protocol front end enforces. Units are last in names.

/// Kafka's `socket.request.max.bytes` default (100 MiB): larger frames are
/// refused before their bytes are read or allocated.
pub const REQUEST_BYTES_MAX: usize = 100 << 20;
/// Connections one shard accepts at once; more wait in the kernel backlog.
pub const CONNECTIONS_MAX_PER_SHARD: usize = 10_000;
/// Requests one connection may have under way (read, not yet answered).
pub const IN_FLIGHT_REQUESTS_MAX_PER_CONNECTION: usize = 32;
/// Request bytes one connection may hold under way; one request of any
/// allowed size always fits.
pub const IN_FLIGHT_BYTES_MAX_PER_CONNECTION: usize = 64 << 20;
/// Request bytes all connections of a shard may hold under way (Kafka's
/// `queued.max.request.bytes`); connections past it wait before reading.
pub const IN_FLIGHT_BYTES_MAX_PER_SHARD: usize = 512 << 20;
