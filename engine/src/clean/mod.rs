//! Log compaction (`cleanup.policy=compact`, issue 14): the map of each
//! key's latest offset over a log's dirty part ([`OffsetMap`]) and the
//! records a pass keeps ([`OffsetMap::keeps`]); when each part of the log
//! was first cleaned, for tombstones' `delete.retention.ms`
//! ([`PassHistory`]). The batch rewrite itself is
//! [`crate::batch::retain_records`]; a pass over a log's sealed segments
//! is `Log::clean` (`log/clean.rs`); the shard's cleaner task picks the
//! log (`PartitionTable::clean_dirtiest`). engine/ARCHITECTURE.md,
//! "Compaction", has the steps.

mod offset_map;
mod passes;
mod throttle;

pub use offset_map::OffsetMap;
pub use passes::PassHistory;
pub use throttle::set_io_limit;
pub(crate) use throttle::throttle;
