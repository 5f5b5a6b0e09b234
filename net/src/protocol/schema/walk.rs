//! The bounded pre-decode pass: walks a body along its message's table,
//! checking every count and length against the bytes that remain and
//! summing the heap `kafka-protocol` will allocate to decode it. Pure; no
//! allocation; each byte read once; recursion as deep as the table.
//!
//! It reads the wire exactly as `kafka-protocol` does (unsigned varints of
//! at most five bytes, -1 or compact 0 for null, tagged fields as tag, size,
//! value), and is stricter where that costs a real client nothing: a known
//! tagged field must fill exactly the size it declares.

use super::{Field, Kind, Message};

/// A body that passed [`check`], and what decoding it will allocate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checked {
    /// An upper bound of the heap bytes `kafka-protocol` allocates to
    /// decode the body.
    pub decoded_bytes: usize,
    /// Bytes the body took (what follows is ignored, as `kafka-protocol`
    /// ignores it).
    pub body_bytes: usize,
}

/// Why a body fails the walk: the field and the byte (from the start of
/// the body) where it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{message}.{field} at byte {at}: {reason}")]
pub struct SchemaError {
    pub message: &'static str,
    pub field: &'static str,
    pub at: usize,
    pub reason: Reason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    #[error("the body ends: {need} more bytes needed")]
    Truncated { need: usize },
    #[error("count {count} needs at least {need} bytes and {left} are left")]
    CountPastEnd { count: u64, need: u64, left: usize },
    #[error("length {length} runs past the {left} bytes left")]
    LengthPastEnd { length: u64, left: usize },
    #[error("negative length or count {0}")]
    Negative(i32),
    #[error("null, and the field is not nullable")]
    Null,
    #[error("tagged field {tag} declares {declared} bytes and holds {used}")]
    TaggedSize {
        tag: u32,
        declared: usize,
        used: usize,
    },
    #[error("tagged field {tag} does not exist at this version")]
    TagOutsideVersions { tag: u32 },
    #[error("version {0} is not one this message has")]
    Version(i16),
}

/// What one unknown tagged field costs decoded: its share of the
/// `BTreeMap<i32, Bytes>` it goes into (nodes of 11 entries, half full at
/// worst) and the map's first node, charged to every entry for simplicity.
const UNKNOWN_TAGGED_FIELD_BYTES: usize = 512;
/// Heap a decode may take whatever the body (the frame's `Bytes` turning
/// shared at its first slice).
const DECODE_BASE_BYTES: usize = 256;

/// Walks `body` as `message` at `version`; `Ok` with the heap decoding it
/// takes, or the first field that would make `kafka-protocol` allocate
/// more than the body can justify (or that it would refuse anyway).
/// Trailing bytes after the body are allowed, as `kafka-protocol` allows
/// them.
pub fn check(message: &'static Message, version: i16, body: &[u8]) -> Result<Checked, SchemaError> {
    let mut walk = Walk {
        message: message.name,
        body,
        at: 0,
        version,
        flexible: message.is_flexible(version),
        decoded_bytes: DECODE_BASE_BYTES,
    };
    if !message.versions.contains(version) {
        return Err(walk.error(message.name, Reason::Version(version)));
    }
    walk.fields(message.fields)?;
    assert!(walk.at <= body.len(), "the walk never reads past the body");
    Ok(Checked {
        decoded_bytes: walk.decoded_bytes,
        body_bytes: walk.at,
    })
}

/// The smallest encoding of `kind` at a version: what one array element
/// must at least consume.
pub(super) fn min_bytes(kind: &Kind, version: i16, flexible: bool) -> usize {
    let length_prefix = if flexible { 1 } else { 4 };
    match kind {
        Kind::Bool | Kind::Int8 => 1,
        Kind::Int16 | Kind::Uint16 => 2,
        Kind::Int32 => 4,
        Kind::Int64 | Kind::Float64 => 8,
        Kind::Uuid => 16,
        Kind::Str => {
            if flexible {
                1
            } else {
                2
            }
        }
        Kind::Bytes | Kind::Records | Kind::Array(_) => length_prefix,
        Kind::Struct(fields) => {
            let present = fields
                .iter()
                .filter(|f| f.tag.is_none() && f.versions.contains(version))
                .map(|f| min_bytes(&f.kind, version, flexible))
                .sum::<usize>();
            present + usize::from(flexible)
        }
    }
}

/// The encoding size of `kind` at a version if it is the same for every
/// value (no strings, bytes or arrays in it; a struct's own tagged fields
/// are not counted): an array of such structs is walked by skipping.
fn fixed_bytes(kind: &Kind, version: i16) -> Option<usize> {
    match kind {
        Kind::Bool | Kind::Int8 => Some(1),
        Kind::Int16 | Kind::Uint16 => Some(2),
        Kind::Int32 => Some(4),
        Kind::Int64 | Kind::Float64 => Some(8),
        Kind::Uuid => Some(16),
        Kind::Str | Kind::Bytes | Kind::Records | Kind::Array(_) => None,
        Kind::Struct(fields) => fields
            .iter()
            .filter(|f| f.tag.is_none() && f.versions.contains(version))
            .map(|f| fixed_bytes(&f.kind, version))
            .sum(),
    }
}

struct Walk<'a> {
    message: &'static str,
    body: &'a [u8],
    /// Bytes of `body` consumed; never past its end.
    at: usize,
    version: i16,
    flexible: bool,
    decoded_bytes: usize,
}

impl Walk<'_> {
    fn left(&self) -> usize {
        self.body.len().saturating_sub(self.at)
    }

    /// An error at the current byte.
    fn error(&self, field: &'static str, reason: Reason) -> SchemaError {
        self.error_at(self.at, field, reason)
    }

    fn skip(&mut self, bytes: usize, field: &'static str) -> Result<(), SchemaError> {
        let left = self.left();
        if bytes > left {
            return Err(self.error(field, Reason::Truncated { need: bytes - left }));
        }
        self.at += bytes;
        Ok(())
    }

    fn fixed<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], SchemaError> {
        let bytes = self
            .body
            .get(self.at..)
            .and_then(|rest| rest.first_chunk::<N>())
            .copied();
        let Some(bytes) = bytes else {
            let need = N - self.left();
            return Err(self.error(field, Reason::Truncated { need }));
        };
        self.at += N;
        Ok(bytes)
    }

    /// An unsigned varint as `kafka-protocol` reads it: at most five bytes,
    /// the fifth taken whole.
    fn varint(&mut self, field: &'static str) -> Result<u32, SchemaError> {
        let mut value = 0u32;
        for i in 0..5 {
            let [byte] = self.fixed::<1>(field)?;
            value |= u32::from(byte & 0x7f) << (i * 7);
            if byte < 0x80 {
                break;
            }
        }
        Ok(value)
    }

    /// A length or count prefix: `None` for null. `wide` is i32 (bytes,
    /// arrays), else i16 (strings); compact versions use a varint.
    fn prefix(
        &mut self,
        field: &Field,
        nullable: bool,
        wide: bool,
    ) -> Result<Option<u64>, SchemaError> {
        let start = self.at;
        let value = if self.flexible {
            match self.varint(field.name)? {
                0 => None,
                n => Some(u64::from(n - 1)),
            }
        } else {
            let raw = if wide {
                i32::from_be_bytes(self.fixed::<4>(field.name)?)
            } else {
                i32::from(i16::from_be_bytes(self.fixed::<2>(field.name)?))
            };
            match raw {
                -1 => None,
                n if n < 0 => return Err(self.error_at(start, field.name, Reason::Negative(n))),
                n => Some(n as u64),
            }
        };
        if value.is_none() && !nullable {
            return Err(self.error_at(start, field.name, Reason::Null));
        }
        Ok(value)
    }

    fn error_at(&self, at: usize, field: &'static str, reason: Reason) -> SchemaError {
        SchemaError {
            message: self.message,
            field,
            at,
            reason,
        }
    }

    fn fields(&mut self, fields: &'static [Field]) -> Result<(), SchemaError> {
        let version = self.version;
        for field in fields
            .iter()
            .filter(|f| f.tag.is_none() && f.versions.contains(version))
        {
            self.value(field, &field.kind, field.nullable)?;
        }
        if self.flexible {
            self.tagged_fields(fields)?;
        }
        Ok(())
    }

    /// One value of `field` (the field itself, or an element of it when it
    /// is an array: elements are never null).
    fn value(
        &mut self,
        field: &'static Field,
        kind: &'static Kind,
        nullable: bool,
    ) -> Result<(), SchemaError> {
        let name = field.name;
        match kind {
            Kind::Bool | Kind::Int8 => self.skip(1, name),
            Kind::Int16 | Kind::Uint16 => self.skip(2, name),
            Kind::Int32 => self.skip(4, name),
            Kind::Int64 | Kind::Float64 => self.skip(8, name),
            Kind::Uuid => self.skip(16, name),
            Kind::Str | Kind::Bytes | Kind::Records => {
                let start = self.at;
                let wide = !matches!(kind, Kind::Str);
                let Some(length) = self.prefix(field, nullable, wide)? else {
                    return Ok(());
                };
                let left = self.left();
                match usize::try_from(length) {
                    Ok(length) if length <= left => self.skip(length, name),
                    _ => Err(self.error_at(start, name, Reason::LengthPastEnd { length, left })),
                }
            }
            Kind::Struct(fields) => self.fields(fields),
            Kind::Array(array) => {
                let start = self.at;
                let Some(count) = self.prefix(field, nullable, true)? else {
                    return Ok(());
                };
                let min = min_bytes(&array.element, self.version, self.flexible).max(1) as u64;
                let left = self.left();
                let need = count.saturating_mul(min);
                if need > left as u64 {
                    let reason = Reason::CountPastEnd { count, need, left };
                    return Err(self.error_at(start, name, reason));
                }
                // count <= left: the product fits (element_bytes is small).
                let elements = count as usize;
                self.decoded_bytes = self
                    .decoded_bytes
                    .saturating_add(elements.saturating_mul(array.element_bytes));
                match (fixed_bytes(&array.element, self.version), &array.element) {
                    // Fixed-size elements: skip each (and its tagged fields).
                    (Some(bytes), Kind::Struct(fields)) => {
                        for _ in 0..elements {
                            self.skip(bytes, name)?;
                            if self.flexible {
                                self.tagged_fields(fields)?;
                            }
                        }
                    }
                    (Some(bytes), _) => {
                        let total = bytes.saturating_mul(elements);
                        self.skip(total, name)?;
                    }
                    (None, element) => {
                        for _ in 0..elements {
                            self.value(field, element, false)?;
                        }
                    }
                }
                Ok(())
            }
        }
    }

    /// The tagged fields that close a struct in flexible versions. Each one
    /// consumes at least two bytes, so the loop ends with the body however
    /// large the count.
    fn tagged_fields(&mut self, fields: &'static [Field]) -> Result<(), SchemaError> {
        let count = self.varint("tagged_fields")?;
        for _ in 0..count {
            let tag = self.varint("tagged_fields")?;
            let size = self.varint("tagged_fields")? as usize;
            let left = self.left();
            if size > left {
                let reason = Reason::LengthPastEnd {
                    length: size as u64,
                    left,
                };
                return Err(self.error("tagged_fields", reason));
            }
            match fields.iter().find(|f| f.tag == Some(tag)) {
                Some(field) if field.versions.contains(self.version) => {
                    let start = self.at;
                    self.value(field, &field.kind, field.nullable)?;
                    let used = self.at - start;
                    if used != size {
                        let reason = Reason::TaggedSize {
                            tag,
                            declared: size,
                            used,
                        };
                        return Err(self.error_at(start, field.name, reason));
                    }
                }
                Some(field) => {
                    return Err(self.error(field.name, Reason::TagOutsideVersions { tag }));
                }
                None => {
                    self.skip(size, "tagged_fields")?;
                    self.decoded_bytes = self
                        .decoded_bytes
                        .saturating_add(UNKNOWN_TAGGED_FIELD_BYTES);
                }
            }
        }
        Ok(())
    }
}
