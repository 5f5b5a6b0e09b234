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

    /// Deletes the records before `offset` (durably: a restart does not
    /// read them again).
    async fn delete_before(&self, offset: i64) -> Result<(), Self::Error>;
}

/// An in-memory [`LogStore`] for tests, and a way to run its futures.
#[cfg(test)]
pub(crate) mod memory {
    use std::cell::{Cell, RefCell};

    use super::LogStore;

    /// Records in a vector: "durable" as soon as appended; those before
    /// the second field's offset are deleted.
    #[derive(Debug, Default)]
    pub(crate) struct MemoryLog(pub(crate) RefCell<Vec<Vec<u8>>>, pub(crate) Cell<i64>);

    impl LogStore for MemoryLog {
        type Error = std::io::Error;
        async fn append_record(&self, value: &[u8]) -> Result<i64, Self::Error> {
            let mut records = self.0.borrow_mut();
            records.push(value.to_vec());
            Ok(records.len() as i64 - 1)
        }
        async fn read_records(&self, from: i64) -> Result<Vec<(i64, Vec<u8>)>, Self::Error> {
            let records = self.0.borrow();
            Ok(records
                .iter()
                .enumerate()
                .skip(from.max(self.1.get()) as usize)
                .map(|(i, r)| (i as i64, r.clone()))
                .collect())
        }
        async fn delete_before(&self, offset: i64) -> Result<(), Self::Error> {
            self.1.set(self.1.get().max(offset));
            Ok(())
        }
    }

    /// Runs a future that never waits (the memory log's).
    pub(crate) fn block_on<T>(fut: impl std::future::Future<Output = T>) -> T {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut fut = std::pin::pin!(fut);
        match fut.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(value) => value,
            std::task::Poll::Pending => unreachable!("the in-memory log never waits"),
        }
    }
}
