//! The Kafka protocol front end.
//!
//! Module map:
//! - [`frame`]: pure framing: the 4-byte size prefix (checked against
//!   `socket.request.max.bytes` before anything is allocated), request
//!   header decoding, response encoding.
//! - [`handlers`]: one module per Kafka API and the only table from API key
//!   to handler ([`handlers::HANDLERS`]); ApiVersions is generated from it.
//! - [`server`]: the only code that touches sockets (glommio): a listener per
//!   shard on the same port (SO_REUSEPORT) and the connection loop.
//! - [`limits`]: every bound the front end enforces.
//! - [`protocol`]: protocol facts below the handlers: the request tables and
//!   the bounded pre-decode walk every request body passes before it is
//!   decoded, and a generator of bodies from the tables for tests and fuzzing.
//!
//! - [`group`]: the classic consumer-group protocol as a sans-IO state
//!   machine, and the `__consumer_offsets` record layout.
//! - [`txn`]: the transaction coordinator as a sans-IO state machine, and
//!   the `__transaction_state` record layout (docs/transactions.md).
//! - [`failpoint`]: crash points armed from the environment, for recovery tests.
//! - [`broker`]: one shard's state (partition table, metadata snapshot,
//!   links to the other shards) and the calls that run an operation on the
//!   shard owning a partition.
//!
//! How a request flows: the connection's reader reads the size prefix,
//! rejects an oversized or non-positive size by closing the connection (with
//! a log line), takes the frame's bytes from the connection's and the shard's
//! in-flight budgets, reads the whole frame, decodes the header, walks the
//! body along its API's table (refusing counts and lengths the frame cannot
//! hold), takes the body's decoded size from the shard's decode budget, and
//! hands the request to [`handlers::dispatch`], which decodes the body at its
//! version and runs the handler's ordered part (a Produce stages its batches). What
//! is left (a Produce's wait for fdatasync) goes to the connection's writer,
//! which finishes requests in order and writes their responses; an API is
//! advertised in ApiVersions only once its handler works.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

pub mod broker;
pub mod cluster;
pub mod failpoint;
pub mod frame;
pub mod group;
pub mod handlers;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod protocol;
pub mod rope;
pub mod sasl;
pub mod server;
pub mod txn;
