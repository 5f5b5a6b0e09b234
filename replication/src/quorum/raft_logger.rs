//! raft-rs logs through slog; this drain hands its lines to `tracing`, with
//! their key-value pairs, under the target "raft". raft-rs's info lines
//! (every vote and campaign) are debug here: the driver logs the leader
//! changes that matter at info.

use std::fmt::Write as _;

/// A slog drain that forwards to `tracing`.
#[derive(Debug, Clone, Copy)]
pub(super) struct RaftLogger;

impl slog::Drain for RaftLogger {
    type Ok = ();
    type Err = slog::Never;

    fn log(
        &self,
        record: &slog::Record<'_>,
        values: &slog::OwnedKVList,
    ) -> Result<(), slog::Never> {
        let mut line = String::new();
        let _ = write!(line, "{}", record.msg());
        let mut pairs = Pairs(&mut line);
        let _ = slog::KV::serialize(&record.kv(), record, &mut pairs);
        let _ = slog::KV::serialize(values, record, &mut pairs);
        match record.level() {
            slog::Level::Critical | slog::Level::Error => tracing::error!(target: "raft", "{line}"),
            slog::Level::Warning => tracing::warn!(target: "raft", "{line}"),
            slog::Level::Info | slog::Level::Debug => tracing::debug!(target: "raft", "{line}"),
            slog::Level::Trace => tracing::trace!(target: "raft", "{line}"),
        }
        Ok(())
    }
}

/// Appends ` key=value` for each pair.
struct Pairs<'a>(&'a mut String);

impl slog::Serializer for Pairs<'_> {
    fn emit_arguments(&mut self, key: slog::Key, value: &std::fmt::Arguments<'_>) -> slog::Result {
        let _ = write!(self.0, " {key}={value}");
        Ok(())
    }
}
