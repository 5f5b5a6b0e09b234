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
/// The default of `in-flight-bytes-per-shard`.
pub const IN_FLIGHT_BYTES_MAX_PER_SHARD: usize = 512 << 20;
/// The default of `slow-request-log-ms`: a request (other than those that
/// wait by design: Fetch, JoinGroup, SyncGroup) answered this long after it
/// was read is logged.
pub const SLOW_REQUEST_LOG: std::time::Duration = std::time::Duration::from_millis(100);
/// Kafka's broker `fetch.max.bytes` default (55 MiB): record bytes one Fetch
/// response carries at most, whatever the client's `max_bytes` (a single
/// batch larger than what is left is still returned, as KIP-74 has it).
pub const FETCH_BYTES_MAX_PER_REQUEST: usize = 57_671_680;
/// Heap one request's decoded body may take, as the pre-decode walk bounds
/// it (`protocol::schema::check`); a request past it is refused and its
/// connection closed. A Metadata request naming 100,000 topics takes about
/// 6 MB, a Fetch of 10,000 partitions under 1 MB.
pub const DECODED_BYTES_MAX_PER_REQUEST: usize = 64 << 20;
/// Heap the decoded request bodies of all connections of a shard may take
/// at once (each connection decodes one request at a time); past it,
/// connections wait before they dispatch.
pub const DECODED_BYTES_MAX_PER_SHARD: usize = 256 << 20;
