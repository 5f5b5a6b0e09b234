//! Compression of a batch's records, in the formats Kafka clients use:
//! gzip (RFC 1952), snappy in the xerial framing the Java client writes
//! (raw snappy blocks are read too: librdkafka writes those), LZ4 frames
//! (KIP-57) and zstd frames.

use std::io::{Read, Write};

use engine::batch::Compression;

/// The xerial snappy stream's header: magic, version 1, compatible 1.
const XERIAL_HEADER: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
/// The Java client's snappy block (SnappyOutputStream's default).
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;

/// Compresses `raw` with `codec` (None returns it as it is).
pub fn compress(codec: Compression, raw: &[u8]) -> anyhow::Result<Vec<u8>> {
    Ok(match codec {
        Compression::None => raw.to_vec(),
        Compression::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(raw)?;
            encoder.finish()?
        }
        Compression::Snappy => {
            let mut out = XERIAL_HEADER.to_vec();
            let mut encoder = snap::raw::Encoder::new();
            for block in raw.chunks(XERIAL_BLOCK_BYTES) {
                let compressed = encoder.compress_vec(block)?;
                out.extend_from_slice(&u32::try_from(compressed.len())?.to_be_bytes());
                out.extend_from_slice(&compressed);
            }
            out
        }
        Compression::Lz4 => {
            let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
            encoder.write_all(raw)?;
            encoder.finish()?
        }
        Compression::Zstd => zstd::bulk::compress(raw, 1)?,
    })
}

/// Decompresses `data`, refusing to produce more than `limit` bytes.
pub fn decompress(codec: Compression, data: &[u8], limit: usize) -> anyhow::Result<Vec<u8>> {
    let bounded = |reader: &mut dyn Read| -> anyhow::Result<Vec<u8>> {
        let mut out = Vec::new();
        reader
            .take(u64::try_from(limit)?.saturating_add(1))
            .read_to_end(&mut out)?;
        anyhow::ensure!(out.len() <= limit, "records decompress past {limit} bytes");
        Ok(out)
    };
    match codec {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => bounded(&mut flate2::read::GzDecoder::new(data)),
        Compression::Snappy => unsnappy(data, limit),
        Compression::Lz4 => bounded(&mut lz4_flex::frame::FrameDecoder::new(data)),
        Compression::Zstd => bounded(&mut zstd::stream::read::Decoder::new(data)?),
    }
}

/// Xerial-framed snappy (a header, then length-prefixed raw blocks), or one
/// raw snappy block.
fn unsnappy(data: &[u8], limit: usize) -> anyhow::Result<Vec<u8>> {
    let mut decoder = snap::raw::Decoder::new();
    let Some(mut rest) = data.strip_prefix(&XERIAL_HEADER[..8]) else {
        anyhow::ensure!(
            snap::raw::decompress_len(data)? <= limit,
            "records decompress past {limit} bytes"
        );
        return Ok(decoder.decompress_vec(data)?);
    };
    // Version and compatible version.
    rest = rest
        .get(8..)
        .ok_or_else(|| anyhow::anyhow!("short xerial snappy header"))?;
    let mut out = Vec::new();
    while let Some((length, tail)) = rest.split_first_chunk::<4>() {
        let length = usize::try_from(u32::from_be_bytes(*length))?;
        let block = tail
            .get(..length)
            .ok_or_else(|| anyhow::anyhow!("xerial snappy block past the data"))?;
        let at = out.len();
        let size = snap::raw::decompress_len(block)?;
        anyhow::ensure!(
            at.saturating_add(size) <= limit,
            "records decompress past {limit} bytes"
        );
        out.resize(at + size, 0);
        decoder.decompress(block, &mut out[at..])?;
        rest = &tail[length..];
    }
    anyhow::ensure!(rest.is_empty(), "xerial snappy stream ends mid-length");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

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
            let packed = compress(codec, &raw).unwrap();
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
            let packed = compress(*codec, &raw).unwrap();
            let error = decompress(*codec, &packed, raw.len() - 1).unwrap_err();
            assert!(error.to_string().contains("past"), "{codec:?}: {error}");
        }
    }

    #[test]
    fn damaged_input_is_an_error_not_a_panic() {
        let raw = sample();
        for codec in &CODECS[1..] {
            let mut packed = compress(*codec, &raw).unwrap();
            let middle = packed.len() / 2;
            packed.truncate(middle);
            assert!(decompress(*codec, &packed, raw.len()).is_err(), "{codec:?}");
        }
    }
}
