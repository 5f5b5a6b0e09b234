//! Log compaction (`cleanup.policy=compact`, issue 14), in pieces as they
//! land. Today: the map of each key's latest offset over a log's dirty
//! part ([`OffsetMap`]) and the records a pass keeps ([`OffsetMap::keeps`]);
//! the batch rewrite itself is [`crate::batch::retain_records`]; a pass
//! over a log's sealed segments is `Log::clean` (`log/clean.rs`). Not yet:
//! the task that runs passes by itself (engine/ARCHITECTURE.md,
//! "Compaction").

mod offset_map;

pub use offset_map::OffsetMap;
