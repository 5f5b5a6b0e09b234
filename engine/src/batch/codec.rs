//! Compression of a batch's records, in the formats Kafka clients use:
//! gzip (RFC 1952), snappy in the xerial framing the Java client writes
//! (raw snappy blocks are read too: librdkafka writes those), LZ4 frames
//! (KIP-57) and zstd frames. The broker decompresses only to recompress a
//! batch to its topic's `compression.type` or to check its timestamps; the
//! benchmark clients use it to build and read batches.

use std::io::{Read, Write};

use super::Compression;

/// The xerial snappy stream's header: magic, version 1, compatible 1.
const XERIAL_HEADER: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
/// The Java client's snappy block (SnappyOutputStream's default).
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;

/// Kafka's default levels (KIP-390): gzip's is zlib's own (6), zstd's 3.
const GZIP_LEVEL_DEFAULT: u32 = 6;
const ZSTD_LEVEL_DEFAULT: i32 = 3;

/// Why records cannot be compressed or decompressed.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("records decompress past {0} bytes")]
    TooLarge(usize),
    #[error("{codec:?} data is malformed: {reason}")]
    Malformed { codec: Compression, reason: String },
}

fn malformed(codec: Compression) -> impl Fn(std::io::Error) -> CodecError {
    move |e| CodecError::Malformed {
        codec,
        reason: e.to_string(),
    }
}

/// Compresses `raw` with `codec` (None returns it as it is) at `level`:
/// Kafka's `compression.<codec>.level`, `None` (or gzip's -1) for the
/// codec's default. LZ4 has one level here (lz4_flex's block compressor).
pub fn compress(codec: Compression, level: Option<i32>, raw: &[u8]) -> Result<Vec<u8>, CodecError> {
    let failed = malformed(codec);
    Ok(match codec {
        Compression::None => raw.to_vec(),
        Compression::Gzip => {
            let level = level
                .and_then(|l| u32::try_from(l).ok())
                .map_or(GZIP_LEVEL_DEFAULT, |l| l.clamp(1, 9));
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
            encoder.write_all(raw).map_err(&failed)?;
            encoder.finish().map_err(&failed)?
        }
        Compression::Snappy => {
            let mut out = XERIAL_HEADER.to_vec();
            let mut encoder = snap::raw::Encoder::new();
            for block in raw.chunks(XERIAL_BLOCK_BYTES) {
                let compressed = encoder.compress_vec(block).map_err(|e| failed(e.into()))?;
                let length = u32::try_from(compressed.len()).unwrap_or(u32::MAX);
                out.extend_from_slice(&length.to_be_bytes());
                out.extend_from_slice(&compressed);
            }
            out
        }
        Compression::Lz4 => {
            let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
            encoder.write_all(raw).map_err(&failed)?;
            encoder.finish().map_err(|e| failed(e.into()))?
        }
        Compression::Zstd => {
            zstd::bulk::compress(raw, level.unwrap_or(ZSTD_LEVEL_DEFAULT)).map_err(&failed)?
        }
    })
}

/// Decompresses `data`, refusing to produce more than `limit` bytes.
pub fn decompress(codec: Compression, data: &[u8], limit: usize) -> Result<Vec<u8>, CodecError> {
    let failed = malformed(codec);
    let bounded = |reader: &mut dyn Read| -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::new();
        reader
            .take(u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1))
            .read_to_end(&mut out)
            .map_err(&failed)?;
        if out.len() > limit {
            return Err(CodecError::TooLarge(limit));
        }
        Ok(out)
    };
    match codec {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => bounded(&mut flate2::read::GzDecoder::new(data)),
        Compression::Snappy => unsnappy(data, limit),
        Compression::Lz4 => bounded(&mut lz4_flex::frame::FrameDecoder::new(data)),
        Compression::Zstd => bounded(&mut zstd::stream::read::Decoder::new(data).map_err(&failed)?),
    }
}

/// Xerial-framed snappy (a header, then length-prefixed raw blocks), or one
/// raw snappy block.
fn unsnappy(data: &[u8], limit: usize) -> Result<Vec<u8>, CodecError> {
    let failed = |reason: &str| CodecError::Malformed {
        codec: Compression::Snappy,
        reason: reason.to_string(),
    };
    let snap_failed = |e: snap::Error| failed(&e.to_string());
    let mut decoder = snap::raw::Decoder::new();
    let Some(mut rest) = data.strip_prefix(&XERIAL_HEADER[..8]) else {
        if snap::raw::decompress_len(data).map_err(snap_failed)? > limit {
            return Err(CodecError::TooLarge(limit));
        }
        return decoder.decompress_vec(data).map_err(snap_failed);
    };
    // Version and compatible version.
    rest = rest.get(8..).ok_or_else(|| failed("short xerial header"))?;
    let mut out = Vec::new();
    while let Some((length, tail)) = rest.split_first_chunk::<4>() {
        let length = u32::from_be_bytes(*length) as usize;
        let block = tail
            .get(..length)
            .ok_or_else(|| failed("xerial block past the data"))?;
        let at = out.len();
        let size = snap::raw::decompress_len(block).map_err(snap_failed)?;
        if at.saturating_add(size) > limit {
            return Err(CodecError::TooLarge(limit));
        }
        out.resize(at + size, 0);
        let written = decoder
            .decompress(block, out.get_mut(at..).unwrap_or_default())
            .map_err(snap_failed)?;
        out.truncate(at + written);
        rest = tail.get(length..).unwrap_or_default();
    }
    if !rest.is_empty() {
        return Err(failed("xerial stream ends mid-length"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODECS: [Compression; 5] = Compression::ALL;

    fn sample() -> Vec<u8> {
        // Compressible and longer than two xerial blocks.
        (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect()
    }

    #[test]
    fn every_codec_round_trips() {
        let raw = sample();
        for codec in CODECS {
            let packed = compress(codec, None, &raw).unwrap();
            if codec != Compression::None {
                assert!(packed.len() < raw.len() / 2, "{codec:?}: {}", packed.len());
            }
            assert_eq!(
                decompress(codec, &packed, raw.len()).unwrap(),
                raw,
                "{codec:?}"
            );
        }
    }

    #[test]
    fn raw_snappy_blocks_are_read_as_librdkafka_writes_them() {
        let raw = sample();
        let block = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
        assert_eq!(
            decompress(Compression::Snappy, &block, raw.len()).unwrap(),
            raw
        );
    }

    #[test]
    fn output_past_the_limit_is_refused() {
        let raw = sample();
        for codec in &CODECS[1..] {
            let packed = compress(*codec, None, &raw).unwrap();
            let error = decompress(*codec, &packed, raw.len() - 1).unwrap_err();
            assert!(
                matches!(error, CodecError::TooLarge(_)),
                "{codec:?}: {error}"
            );
        }
    }

    #[test]
    fn damaged_input_is_an_error_not_a_panic() {
        let raw = sample();
        for codec in &CODECS[1..] {
            let mut packed = compress(*codec, None, &raw).unwrap();
            let middle = packed.len() / 2;
            packed.truncate(middle);
            assert!(decompress(*codec, &packed, raw.len()).is_err(), "{codec:?}");
        }
    }
}
