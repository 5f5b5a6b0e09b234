//! The messages a producer sends: sizes, keys and payload bytes as the
//! workload says, each starting with a header (producer, sequence number,
//! due time) that consumers read back.

use std::sync::Arc;

use crate::workload::{HEADER_BYTES, Keys, MessageSize, Payload, Workload};

/// xorshift64*: small, fast, and the same for a seed everywhere.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What every message starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub producer: u32,
    pub sequence: u64,
    /// Nanoseconds from the run's start to the message's due time.
    pub due_ns: u64,
}

impl Header {
    pub fn write(&self, into: &mut [u8]) {
        if let Some(bytes) = into.get_mut(..HEADER_BYTES) {
            bytes[..4].copy_from_slice(&self.producer.to_le_bytes());
            bytes[4..12].copy_from_slice(&self.sequence.to_le_bytes());
            bytes[12..20].copy_from_slice(&self.due_ns.to_le_bytes());
        }
    }

    /// `None` for a message too short to be one of ours.
    pub fn read(bytes: &[u8]) -> Option<Header> {
        let producer = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?);
        let sequence = u64::from_le_bytes(bytes.get(4..12)?.try_into().ok()?);
        let due_ns = u64::from_le_bytes(bytes.get(12..20)?.try_into().ok()?);
        Some(Header {
            producer,
            sequence,
            due_ns,
        })
    }
}

/// The bytes payloads are cut from: random, or a file's contents.
#[derive(Debug, Clone)]
pub struct Source(Arc<Vec<u8>>);

impl Source {
    pub fn load(workload: &Workload, seed: u64) -> anyhow::Result<Source> {
        let largest = match workload.message_size {
            MessageSize::Fixed(n) => n,
            MessageSize::Uniform { max, .. } => max,
        };
        let bytes = match &workload.payload {
            Payload::Random => {
                // Twice the largest message (at least 1 MiB): slices at
                // random offsets never repeat a message exactly.
                let mut rng = Rng::new(seed);
                (0..(2 * largest).max(1 << 20))
                    .map(|_| rng.next_u64().to_le_bytes()[0])
                    .collect()
            }
            Payload::File(path) => {
                let bytes = std::fs::read(path)
                    .map_err(|e| anyhow::anyhow!("payload file {}: {e}", path.display()))?;
                anyhow::ensure!(
                    !bytes.is_empty(),
                    "payload file {} is empty",
                    path.display()
                );
                bytes
            }
        };
        Ok(Source(Arc::new(bytes)))
    }
}

/// Makes one producer's messages.
#[derive(Debug)]
pub struct Generator {
    producer: u32,
    size: MessageSize,
    keys: KeyChooser,
    source: Source,
    rng: Rng,
}

impl Generator {
    pub fn new(workload: &Workload, producer: u32, source: Source, seed: u64) -> Generator {
        Generator {
            producer,
            size: workload.message_size,
            keys: KeyChooser::new(workload.keys),
            source,
            rng: Rng::new(seed ^ (u64::from(producer) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        }
    }

    /// Message `sequence`, due `due_ns` after the run's start: its key (if
    /// the workload has keys) and payload.
    pub fn message(&mut self, sequence: u64, due_ns: u64) -> (Option<Vec<u8>>, Vec<u8>) {
        let size = match self.size {
            MessageSize::Fixed(n) => n,
            MessageSize::Uniform { min, max } => {
                min + usize::try_from(self.rng.below((max - min + 1) as u64)).unwrap_or(0)
            }
        };
        let source = &self.source.0;
        let mut payload = Vec::with_capacity(size);
        let mut at = usize::try_from(self.rng.below(source.len() as u64)).unwrap_or(0);
        while payload.len() < size {
            let take = (size - payload.len()).min(source.len() - at);
            payload.extend_from_slice(&source[at..at + take]);
            at = 0;
        }
        Header {
            producer: self.producer,
            sequence,
            due_ns,
        }
        .write(&mut payload);
        let key = self
            .keys
            .choose(&mut self.rng)
            .map(|k| format!("key-{k}").into_bytes());
        (key, payload)
    }
}

/// Picks keys: uniform, or Zipf (exponent 1) by inverting its CDF.
#[derive(Debug)]
enum KeyChooser {
    None,
    Uniform(u64),
    Skewed(Vec<f64>),
}

impl KeyChooser {
    fn new(keys: Keys) -> KeyChooser {
        match keys {
            Keys::None => KeyChooser::None,
            Keys::Uniform(k) => KeyChooser::Uniform(k),
            Keys::Skewed(k) => {
                let mut total = 0.0;
                let mut cdf: Vec<f64> = (1..=k)
                    .map(|rank| {
                        total += 1.0 / rank as f64;
                        total
                    })
                    .collect();
                for c in &mut cdf {
                    *c /= total;
                }
                KeyChooser::Skewed(cdf)
            }
        }
    }

    fn choose(&self, rng: &mut Rng) -> Option<u64> {
        match self {
            KeyChooser::None => None,
            KeyChooser::Uniform(k) => Some(rng.below(*k)),
            KeyChooser::Skewed(cdf) => {
                let u = rng.unit();
                Some(cdf.partition_point(|&c| c < u) as u64)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed() -> u64 {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        eprintln!("seed {seed}");
        seed
    }

    #[test]
    fn messages_carry_their_header_and_size() {
        let seed = seed();
        let workload = Workload {
            message_size: MessageSize::Uniform { min: 20, max: 3000 },
            keys: Keys::Uniform(10),
            ..Workload::default()
        };
        let source = Source::load(&workload, seed).unwrap();
        let mut generator = Generator::new(&workload, 7, source, seed);
        for sequence in 0..1000 {
            let (key, payload) = generator.message(sequence, sequence * 1000);
            assert!((20..=3000).contains(&payload.len()), "{}", payload.len());
            let header = Header::read(&payload).unwrap();
            assert_eq!(
                header,
                Header {
                    producer: 7,
                    sequence,
                    due_ns: sequence * 1000
                }
            );
            let key = String::from_utf8(key.unwrap()).unwrap();
            let k: u64 = key.strip_prefix("key-").unwrap().parse().unwrap();
            assert!(k < 10);
        }
        assert_eq!(Header::read(&[0; 19]), None);
    }

    #[test]
    fn skewed_keys_favour_the_first_ones() {
        let mut rng = Rng::new(seed());
        let chooser = KeyChooser::new(Keys::Skewed(1000));
        let mut counts = vec![0u32; 1000];
        for _ in 0..100_000 {
            counts[chooser.choose(&mut rng).unwrap() as usize] += 1;
        }
        // Zipf(1) over 1000 keys: key 0 has 1/H(1000) ≈ 13% of the traffic,
        // key 999 about 0.013%.
        assert!((11_000..15_000).contains(&counts[0]), "{}", counts[0]);
        assert!(counts[0] > 5 * counts[9], "{counts:?}");
        assert!(counts[999] < 100, "{}", counts[999]);
    }

    #[test]
    fn file_payloads_are_slices_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("payload.txt");
        std::fs::write(&path, b"abcdefghij").unwrap();
        let workload = Workload {
            message_size: MessageSize::Fixed(64),
            payload: Payload::File(path),
            ..Workload::default()
        };
        let source = Source::load(&workload, 1).unwrap();
        let (key, payload) = Generator::new(&workload, 0, source, 1).message(0, 0);
        assert_eq!(key, None);
        let text = &payload[HEADER_BYTES..];
        assert!(text.iter().all(u8::is_ascii_lowercase), "{text:?}");
        assert!(
            text.windows(2)
                .all(|w| w[1] == w[0] + 1 || (w[0], w[1]) == (b'j', b'a'))
        );
    }
}
