//! Running engine code: the executor every shard (and every test) runs on.
//! With `io` this is the only place that names glommio.

use std::future::Future;

use crate::limits::IO_MEMORY_BYTES;

/// Runs `fut` to completion on a new single-threaded io_uring executor on a
/// new thread, optionally pinned to `cpu`, and returns its output.
///
/// Fails if the executor cannot start, most often because the memlock limit
/// (`ulimit -l`) is below the 512 KiB glommio needs for its rings.
pub fn run_on_executor<T, F, G>(name: &str, cpu: Option<usize>, make: G) -> std::io::Result<T>
where
    G: FnOnce() -> F + Send + 'static,
    F: Future<Output = T> + 'static,
    T: Send + 'static,
{
    let mut builder = glommio::LocalExecutorBuilder::new(match cpu {
        Some(cpu) => glommio::Placement::Fixed(cpu),
        None => glommio::Placement::Unbound,
    })
    .name(name)
    .io_memory(IO_MEMORY_BYTES);
    builder = builder.ring_depth(128);
    let handle = builder.spawn(make).map_err(|e| {
        std::io::Error::other(format!(
            "cannot start the io_uring executor {name:?}: {e} (is `ulimit -l` at least 512 KiB?)"
        ))
    })?;
    handle.join().map_err(|e| std::io::Error::other(format!("executor {name:?} failed: {e}")))
}
