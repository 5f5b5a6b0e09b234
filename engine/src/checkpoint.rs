//! The per-partition checkpoint file `partition.checkpoint`.
//!
//! Format (text, one field per line, then a CRC-32C of the lines above it):
//!
//! ```text
//! shardlog-partition-checkpoint 1
//! log_start_offset 1200
//! recovery_point 5000
//! cleaned_to 4000
//! clean_passes 2500@1764000000000 4000@1764000900000
//! tombstones_due 1764086400000
//! crc 2837461234
//! ```
//!
//! - `log_start_offset`: the first offset readers may see (moved by retention
//!   and DeleteRecords; may point inside a segment).
//! - `recovery_point`: every batch below it is durable and was checked; the
//!   segments wholly below it are not rescanned on open.
//! - `cleaned_to` (compacted logs; absent in files of older builds, read
//!   as 0): where the log cleaner's next pass maps keys from.
//! - `clean_passes` ([`PassHistory`], `-` for none) and `tombstones_due`
//!   (ms, `-` for none): when the cleaner first saw each part of the log,
//!   and when the first tombstone it keeps may go (`delete.retention.ms`
//!   after that). Both absent in older files: nothing seen yet.
//!
//! It is replaced atomically (write temp, fdatasync, rename, fsync dir), so
//! after a crash it holds either the old or the new contents. A file that
//! fails its CRC or cannot be parsed is treated as absent: the log start
//! offset falls back to the first segment and every segment is rescanned.

use std::path::Path;

use crate::clean::PassHistory;
use crate::{IoError, Offset, io};

pub const FILE_NAME: &str = "partition.checkpoint";
const MAGIC: &str = "shardlog-partition-checkpoint 1";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoint {
    pub log_start_offset: Offset,
    pub recovery_point: Offset,
    pub cleaned_to: Offset,
    pub clean_passes: PassHistory,
    pub tombstones_due: Option<i64>,
}

/// `body` (whole lines) followed by its CRC-32C line, `crc N`: how the
/// engine's small text files (this one, the leader-epoch checkpoint) tell a
/// damaged or torn file from a good one.
pub(crate) fn with_crc(body: String) -> String {
    let crc = crc32c::crc32c(body.as_bytes());
    format!("{body}crc {crc}\n")
}

/// The body of a text [`with_crc`] made, if its CRC holds.
pub(crate) fn checked_body(text: &str) -> Option<&str> {
    let crc_at = text.rfind("crc ")?;
    let (body, crc_line) = text.split_at(crc_at);
    let crc: u32 = crc_line.strip_prefix("crc ")?.trim_end().parse().ok()?;
    (crc32c::crc32c(body.as_bytes()) == crc).then_some(body)
}

impl Checkpoint {
    pub fn encode(&self) -> String {
        let due = self
            .tombstones_due
            .map_or_else(|| "-".to_string(), |due| due.to_string());
        with_crc(format!(
            "{MAGIC}\nlog_start_offset {}\nrecovery_point {}\ncleaned_to {}\nclean_passes {}\ntombstones_due {due}\n",
            self.log_start_offset,
            self.recovery_point,
            self.cleaned_to,
            self.clean_passes.encode(),
        ))
    }

    /// Parses a checkpoint; `None` for anything malformed or failing its CRC.
    pub fn decode(text: &str) -> Option<Checkpoint> {
        let body = checked_body(text)?;
        let mut lines = body.lines();
        if lines.next()? != MAGIC {
            return None;
        }
        let mut field =
            |name: &str| -> Option<&str> { lines.next()?.strip_prefix(name)?.strip_prefix(' ') };
        let offset = |value: &str| value.parse().ok().map(Offset);
        let log_start_offset = field("log_start_offset").and_then(offset)?;
        let recovery_point = field("recovery_point").and_then(offset)?;
        // Fields later builds added: absent in older files.
        let cleaned_to = match field("cleaned_to") {
            Some(value) => offset(value)?,
            None => Offset::ZERO,
        };
        let clean_passes = match field("clean_passes") {
            Some(value) => PassHistory::decode(value)?,
            None => PassHistory::default(),
        };
        let tombstones_due = match field("tombstones_due") {
            None | Some("-") => None,
            Some(value) => Some(value.parse().ok()?),
        };
        (log_start_offset.0 >= 0 && recovery_point.0 >= 0).then_some(Checkpoint {
            log_start_offset,
            recovery_point,
            cleaned_to,
            clean_passes,
            tombstones_due,
        })
    }

    pub(crate) async fn read(dir: &Path) -> Result<Option<Checkpoint>, IoError> {
        let path = dir.join(FILE_NAME);
        let Some(bytes) = io::read_file(&path).await? else {
            return Ok(None);
        };
        let parsed = std::str::from_utf8(&bytes)
            .ok()
            .and_then(Checkpoint::decode);
        if parsed.is_none() {
            tracing::warn!(path = %path.display(), "checkpoint unreadable; rescanning every segment");
        }
        Ok(parsed)
    }

    pub(crate) async fn write(&self, dir: &Path) -> Result<(), IoError> {
        io::write_file_atomic(&dir.join(FILE_NAME), self.encode().into_bytes()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_damage() {
        let mut clean_passes = PassHistory::default();
        clean_passes.record(1500, 1_764_000_000_000);
        clean_passes.record(2000, 1_764_000_900_000);
        let cp = Checkpoint {
            log_start_offset: Offset(12),
            recovery_point: Offset(3400),
            cleaned_to: Offset(2000),
            clean_passes,
            tombstones_due: Some(1_764_086_400_000),
        };
        let text = cp.encode();
        assert_eq!(Checkpoint::decode(&text), Some(cp.clone()));
        // A file of an older build, without cleaned_to.
        let old = with_crc(format!(
            "{MAGIC}\nlog_start_offset 12\nrecovery_point 3400\n"
        ));
        assert_eq!(
            Checkpoint::decode(&old),
            Some(Checkpoint {
                log_start_offset: Offset(12),
                recovery_point: Offset(3400),
                ..Checkpoint::default()
            })
        );
        let damaged = text.replace("3400", "3401");
        assert_eq!(Checkpoint::decode(&damaged), None);
        assert_eq!(Checkpoint::decode(&text[..text.len() - 3]), None);
        assert_eq!(Checkpoint::decode(""), None);
    }
}
