//! Facts of the Kafka protocol that the framing, the handlers and the
//! coordinators share, below all of them.
//!
//! - [`schema`]: the wire layout of every request we decode, as tables;
//!   the bounded pre-decode pass ([`schema::check`]) that every request
//!   body goes through before `kafka-protocol` decodes it, and a generator
//!   of bodies from the same tables for tests and fuzzing.

pub mod schema;
