//! Request bodies generated from the tables, for tests and fuzzing: valid
//! bodies of any message at any version (random counts, lengths, nulls,
//! known and unknown tagged fields, real record batches), the places where
//! each one holds a count or a length, and from those the hostile variants
//! a fuzzer wants: every count and length rewritten to extreme values, and
//! every cut at a field boundary. Deterministic for a seed.

use engine::batch::builder::{BatchSpec, Record, encode_batch, encode_records};

use super::{Field, Kind, Message};

/// A small deterministic generator (SplitMix64): tests print its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// True once in `n` times on average.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n.max(1)) == 0
    }

    pub fn fill(&mut self, out: &mut [u8]) {
        for byte in out {
            *byte = self.next_u64() as u8;
        }
    }
}

/// How a count or length is written on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    Int16,
    Int32,
    /// An unsigned varint (a compact length or count holds its value + 1;
    /// a tagged field's count and size hold the value itself).
    Varint,
}

/// Where a body holds a count or a length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Site {
    pub at: usize,
    pub width: usize,
    pub prefix: Prefix,
}

/// A generated body, with its field boundaries and count/length sites.
#[derive(Debug, Clone, Default)]
pub struct Body {
    pub bytes: Vec<u8>,
    /// Byte positions between fields (cutting there ends a field exactly).
    pub boundaries: Vec<usize>,
    pub sites: Vec<Site>,
}

/// How large and how odd generated bodies are.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub elements_max: u64,
    pub length_max: u64,
    /// One nullable value in `null_one_in` is null.
    pub null_one_in: u64,
    /// One known tagged field in `tagged_one_in` is present; as often, an
    /// unknown tagged field closes a struct.
    pub tagged_one_in: u64,
    /// Nulls also where the field is not nullable (to test the tables'
    /// nullability against a decoder).
    pub null_anywhere: bool,
    /// Strings to use half the time instead of random ones (names of
    /// topics and groups that exist, so requests reach past the lookup).
    pub words: &'static [&'static str],
}

impl Default for Shape {
    fn default() -> Shape {
        Shape {
            elements_max: 3,
            length_max: 12,
            null_one_in: 4,
            tagged_one_in: 3,
            null_anywhere: false,
            words: &[],
        }
    }
}

/// Characters of generated strings: valid topic and group names, never
/// upper case (a test's own topics can use upper case to stay out of reach).
const NAME_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789._-";

/// A valid body of `message` at `version`.
pub fn body(message: &Message, version: i16, shape: Shape, rng: &mut Rng) -> Body {
    let mut generator = Generator {
        version,
        flexible: message.is_flexible(version),
        shape,
        rng,
        out: Body::default(),
    };
    generator.out.boundaries.push(0);
    generator.fields(message.fields);
    generator.out
}

struct Generator<'r> {
    version: i16,
    flexible: bool,
    shape: Shape,
    rng: &'r mut Rng,
    out: Body,
}

impl Generator<'_> {
    fn boundary(&mut self) {
        self.out.boundaries.push(self.out.bytes.len());
    }

    fn put_varint(&mut self, mut value: u32) -> usize {
        let start = self.out.bytes.len();
        while value >= 0x80 {
            self.out.bytes.push((value as u8 & 0x7f) | 0x80);
            value >>= 7;
        }
        self.out.bytes.push(value as u8);
        self.out.bytes.len() - start
    }

    /// Writes a length or count prefix (`None`: null) and records its site.
    fn put_prefix(&mut self, value: Option<u64>, wide: bool) {
        let at = self.out.bytes.len();
        let (width, prefix) = if self.flexible {
            let raw = value.map_or(0, |v| u32::try_from(v + 1).unwrap_or(u32::MAX));
            (self.put_varint(raw), Prefix::Varint)
        } else if wide {
            let raw = value.map_or(-1, |v| i32::try_from(v).unwrap_or(i32::MAX));
            self.out.bytes.extend_from_slice(&raw.to_be_bytes());
            (4, Prefix::Int32)
        } else {
            let raw = value.map_or(-1, |v| i16::try_from(v).unwrap_or(i16::MAX));
            self.out.bytes.extend_from_slice(&raw.to_be_bytes());
            (2, Prefix::Int16)
        };
        self.out.sites.push(Site { at, width, prefix });
    }

    fn fields(&mut self, fields: &'static [Field]) {
        let version = self.version;
        for field in fields
            .iter()
            .filter(|f| f.tag.is_none() && f.versions.contains(version))
        {
            self.value(&field.kind, field.nullable);
            self.boundary();
        }
        if self.flexible {
            self.tagged_fields(fields);
            self.boundary();
        }
    }

    fn is_null(&mut self, nullable: bool) -> bool {
        (nullable || self.shape.null_anywhere) && self.rng.one_in(self.shape.null_one_in)
    }

    fn integer(&mut self, bytes: usize) {
        // Mostly small values, sometimes the extremes, sometimes anything.
        let value: i64 = match self.rng.below(6) {
            0 => -1,
            1 => i64::MAX,
            2 => i64::MIN,
            3 => self.rng.next_u64() as i64,
            _ => self.rng.below(16) as i64,
        };
        let be = value.to_be_bytes();
        let start = be.len() - bytes;
        self.out
            .bytes
            .extend_from_slice(be.get(start..).unwrap_or(&be));
    }

    /// One value of a field's `kind` (elements of an array are never null).
    fn value(&mut self, kind: &'static Kind, nullable: bool) {
        match kind {
            Kind::Bool => {
                let byte = self.rng.below(2) as u8;
                self.out.bytes.push(byte);
            }
            Kind::Int8 => self.integer(1),
            Kind::Int16 | Kind::Uint16 => self.integer(2),
            Kind::Int32 => self.integer(4),
            Kind::Int64 | Kind::Float64 => self.integer(8),
            Kind::Uuid => {
                let mut uuid = [0u8; 16];
                self.rng.fill(&mut uuid);
                self.out.bytes.extend_from_slice(&uuid);
            }
            Kind::Str => self.string(nullable),
            Kind::Bytes => self.bytes(nullable),
            Kind::Records => self.records(nullable),
            Kind::Struct(fields) => self.fields(fields),
            Kind::Array(array) => {
                if self.is_null(nullable) {
                    self.put_prefix(None, true);
                    return;
                }
                let count = self.rng.below(self.shape.elements_max + 1);
                self.put_prefix(Some(count), true);
                for _ in 0..count {
                    self.value(&array.element, false);
                    self.boundary();
                }
            }
        }
    }

    fn string(&mut self, nullable: bool) {
        if self.is_null(nullable) {
            self.put_prefix(None, false);
            return;
        }
        if !self.shape.words.is_empty() && self.rng.one_in(2) {
            let pick = self.rng.below(self.shape.words.len() as u64) as usize;
            let word = self.shape.words.get(pick).copied().unwrap_or_default();
            self.put_prefix(Some(word.len() as u64), false);
            self.out.bytes.extend_from_slice(word.as_bytes());
            return;
        }
        let length = self.rng.below(self.shape.length_max + 1);
        self.put_prefix(Some(length), false);
        for _ in 0..length {
            let at = self.rng.below(NAME_CHARS.len() as u64) as usize;
            self.out
                .bytes
                .push(NAME_CHARS.get(at).copied().unwrap_or(b'x'));
        }
    }

    fn bytes(&mut self, nullable: bool) {
        if self.is_null(nullable) {
            self.put_prefix(None, true);
            return;
        }
        let mut bytes = vec![0u8; self.rng.below(self.shape.length_max + 1) as usize];
        self.rng.fill(&mut bytes);
        self.put_prefix(Some(bytes.len() as u64), true);
        self.out.bytes.extend_from_slice(&bytes);
    }

    /// Half the time a valid record batch (so a Produce reaches the batch
    /// validator and the log), else random bytes.
    fn records(&mut self, nullable: bool) {
        if self.is_null(nullable) || self.rng.one_in(2) {
            return self.bytes(nullable);
        }
        let mut value = vec![0u8; self.rng.below(self.shape.length_max + 1) as usize];
        self.rng.fill(&mut value);
        let record = Record {
            value: Some(&value),
            ..Record::default()
        };
        let batch = encode_batch(
            &BatchSpec::new(1, 1_700_000_000_000),
            &encode_records(&[record]),
        );
        self.put_prefix(Some(batch.len() as u64), true);
        self.out.bytes.extend_from_slice(&batch);
    }

    /// Known tagged fields present at this version (each sometimes), then
    /// sometimes an unknown one, in ascending tag order as Kafka requires.
    fn tagged_fields(&mut self, fields: &'static [Field]) {
        let version = self.version;
        let mut chosen: Vec<&'static Field> = fields
            .iter()
            .filter(|f| f.tag.is_some() && f.versions.contains(version))
            .filter(|_| self.rng.one_in(self.shape.tagged_one_in))
            .collect();
        chosen.sort_by_key(|f| f.tag);
        let unknown = self.rng.one_in(self.shape.tagged_one_in);
        let count = chosen.len() + usize::from(unknown);
        self.tagged_varint(count as u32);
        for field in chosen {
            let mut inner = Generator {
                version: self.version,
                flexible: self.flexible,
                shape: self.shape,
                rng: &mut *self.rng,
                out: Body::default(),
            };
            inner.value(&field.kind, field.nullable);
            let value = inner.out;
            self.put_varint(field.tag.unwrap_or_default());
            self.tagged_varint(value.bytes.len() as u32);
            self.append(value);
        }
        if unknown {
            let tag = 10_000 + self.rng.below(1000) as u32;
            self.put_varint(tag);
            let mut value = vec![0u8; self.rng.below(self.shape.length_max + 1) as usize];
            self.rng.fill(&mut value);
            self.tagged_varint(value.len() as u32);
            self.out.bytes.extend_from_slice(&value);
        }
    }

    /// A tagged-field count or size (a varint holding the value itself).
    fn tagged_varint(&mut self, value: u32) {
        let at = self.out.bytes.len();
        let width = self.put_varint(value);
        let prefix = Prefix::Varint;
        self.out.sites.push(Site { at, width, prefix });
    }

    fn append(&mut self, inner: Body) {
        let base = self.out.bytes.len();
        self.out.bytes.extend_from_slice(&inner.bytes);
        let shift = |at: usize| base + at;
        self.out
            .boundaries
            .extend(inner.boundaries.iter().map(|&at| shift(at)));
        self.out.sites.extend(inner.sites.iter().map(|site| Site {
            at: shift(site.at),
            ..*site
        }));
    }
}

/// The extreme values a count or length at `site` is rewritten to: null,
/// negative, zero, the largest, and just past the end of the body.
fn extremes(site: &Site, body_len: usize) -> Vec<Vec<u8>> {
    let past_end = body_len.saturating_sub(site.at + site.width) + 1;
    match site.prefix {
        Prefix::Int16 => [
            -1i16,
            -2,
            0,
            i16::MAX,
            i16::MIN,
            past_end.min(0x7fff) as i16,
        ]
        .iter()
        .map(|v| v.to_be_bytes().to_vec())
        .collect(),
        Prefix::Int32 => [
            -1i32,
            -2,
            0,
            i32::MAX,
            i32::MIN,
            past_end.min(0x7fff_ffff) as i32,
        ]
        .iter()
        .map(|v| v.to_be_bytes().to_vec())
        .collect(),
        Prefix::Varint => {
            let past = u32::try_from(past_end + 1).unwrap_or(u32::MAX);
            let mut out: Vec<Vec<u8>> = [0u32, 1, 0x7fff_ffff, u32::MAX, past]
                .iter()
                .map(|&v| varint(v))
                .collect();
            // Five continuation bytes: read as a whole varint of junk.
            out.push(vec![0xff; 5]);
            out
        }
    }
}

fn varint(mut value: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(5);
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
    out
}

/// Every variant of `body` with one count or length rewritten to an
/// extreme value.
pub fn extreme_variants(body: &Body) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for site in &body.sites {
        let (Some(head), Some(tail)) = (
            body.bytes.get(..site.at),
            body.bytes.get(site.at + site.width..),
        ) else {
            continue;
        };
        for value in extremes(site, body.bytes.len()) {
            let mut variant = Vec::with_capacity(body.bytes.len() + value.len());
            variant.extend_from_slice(head);
            variant.extend_from_slice(&value);
            variant.extend_from_slice(tail);
            out.push(variant);
        }
    }
    out
}

/// `body` cut at every field boundary and in the middle of every prefix.
pub fn truncations(body: &Body) -> Vec<&[u8]> {
    let mut cuts: Vec<usize> = body.boundaries.clone();
    cuts.extend(body.sites.iter().map(|s| s.at + s.width / 2));
    cuts.sort_unstable();
    cuts.dedup();
    cuts.iter()
        .filter(|&&cut| cut < body.bytes.len())
        .filter_map(|&cut| body.bytes.get(..cut))
        .collect()
}
