//! The per-partition checkpoint file `partition.checkpoint`.
//!
//! Format (text, one field per line, then a CRC-32C of the lines above it):
//!
//! ```text
//! shardlog-partition-checkpoint 1
//! log_start_offset 1200
//! recovery_point 5000
//! cleaned_to 4000
//! crc 2837461234
//! ```
//!
//! - `log_start_offset`: the first offset readers may see (moved by retention
//!   and DeleteRecords; may point inside a segment).
//! - `recovery_point`: every batch below it is durable and was checked; the
//!   segments wholly below it are not rescanned on open.
//! - `cleaned_to` (compacted logs; absent in files of older builds, read
//!   as 0): where the log cleaner's next pass maps keys from.
//!
//! It is replaced atomically (write temp, fdatasync, rename, fsync dir), so
//! after a crash it holds either the old or the new contents. A file that
//! fails its CRC or cannot be parsed is treated as absent: the log start
//! offset falls back to the first segment and every segment is rescanned.

use std::path::Path;

use crate::{IoError, Offset, io};

pub const FILE_NAME: &str = "partition.checkpoint";
const MAGIC: &str = "shardlog-partition-checkpoint 1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    pub log_start_offset: Offset,
    pub recovery_point: Offset,
    pub cleaned_to: Offset,
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
        with_crc(format!(
            "{MAGIC}\nlog_start_offset {}\nrecovery_point {}\ncleaned_to {}\n",
            self.log_start_offset, self.recovery_point, self.cleaned_to
        ))
    }

    /// Parses a checkpoint; `None` for anything malformed or failing its CRC.
    pub fn decode(text: &str) -> Option<Checkpoint> {
        let body = checked_body(text)?;
        let mut lines = body.lines();
        if lines.next()? != MAGIC {
            return None;
        }
        let mut field = |name: &str| -> Option<Offset> {
            let value = lines.next()?.strip_prefix(name)?.strip_prefix(' ')?;
            value.parse().ok().map(Offset)
        };
        let log_start_offset = field("log_start_offset")?;
        let recovery_point = field("recovery_point")?;
        let cleaned_to = field("cleaned_to").unwrap_or(Offset::ZERO);
        (log_start_offset.0 >= 0 && recovery_point.0 >= 0).then_some(Checkpoint {
            log_start_offset,
            recovery_point,
            cleaned_to,
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
        let cp = Checkpoint {
            log_start_offset: Offset(12),
            recovery_point: Offset(3400),
            cleaned_to: Offset(2000),
        };
        let text = cp.encode();
        assert_eq!(Checkpoint::decode(&text), Some(cp));
        // A file of an older build, without cleaned_to.
        let old = with_crc(format!(
            "{MAGIC}\nlog_start_offset 12\nrecovery_point 3400\n"
        ));
        assert_eq!(
            Checkpoint::decode(&old),
            Some(Checkpoint {
                cleaned_to: Offset::ZERO,
                ..cp
            })
        );
        let damaged = text.replace("3400", "3401");
        assert_eq!(Checkpoint::decode(&damaged), None);
        assert_eq!(Checkpoint::decode(&text[..text.len() - 3]), None);
        assert_eq!(Checkpoint::decode(""), None);
    }
}
