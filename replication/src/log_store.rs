//! The contract between the state machines here and a durable log.

/// A durable, append-only log of records, as the state machines of this
/// crate need it. `engine::Log` implements it; tests use an in-memory one.
///
/// Contract: `append_record` resolves only once the record is durable (it
/// survives a crash), and returns the record's offset; offsets increase.
/// `read_records` returns every durable record at or after `from` (skipping
/// what retention removed), in offset order. Both run on the shard that owns
/// the log; futures need not be `Send`.
#[expect(
    async_fn_in_trait,
    reason = "logs live on one shard: their futures are deliberately not Send"
)]
pub trait LogStore {
    type Error: std::error::Error + 'static;

    async fn append_record(&self, value: &[u8]) -> Result<i64, Self::Error>;

    async fn read_records(&self, from: i64) -> Result<Vec<(i64, Vec<u8>)>, Self::Error>;
}
