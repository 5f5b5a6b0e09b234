//! Log compaction (`cleanup.policy=compact`, issue 14), in pieces as they
//! land. Today: the map of each key's latest offset over a log's dirty
//! part ([`OffsetMap`]) and the records a pass keeps ([`OffsetMap::keeps`]);
//! the batch rewrite itself is [`crate::batch::retain_records`]. Not yet:
//! the cleaner task that rewrites sealed segments and swaps them in.

mod offset_map;

pub use offset_map::OffsetMap;
