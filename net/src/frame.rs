//! Framing of Kafka requests and responses (pure: no I/O).
//!
//! A request is `size: i32` followed by `size` bytes: `api_key: i16`,
//! `api_version: i16`, `correlation_id: i32`, `client_id`, tagged fields
//! (header v2, for flexible versions), then the body. A response is `size`,
//! `correlation_id`, tagged fields (header v1), then the body.

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::limits::DECODED_BYTES_MAX_PER_REQUEST;
use crate::protocol::schema::{self, SchemaError};

/// Bytes of the size prefix of every frame.
pub const SIZE_PREFIX_BYTES: usize = 4;

/// Kafka's principal of a connection that did not authenticate.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// The name of the listener `--listen` makes (Kafka's for an unnamed
/// plaintext listener).
pub const DEFAULT_LISTENER: &str = "PLAINTEXT";
/// api_key + api_version + correlation_id: what every request starts with.
const HEADER_PREFIX_BYTES: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {size} bytes exceeds socket.request.max.bytes ({max})")]
    TooLarge { size: i32, max: usize },
    #[error("frame size {0} is not positive")]
    NotPositive(i32),
    #[error("request of {have} bytes is too short for a request header")]
    Truncated { have: usize },
    #[error("unknown API key {api_key} (correlation id {correlation_id})")]
    UnknownApiKey { api_key: i16, correlation_id: i32 },
    #[error("malformed {api_key:?} v{version} request header")]
    BadHeader {
        api_key: ApiKey,
        version: i16,
        #[source]
        source: anyhow::Error,
    },
    #[error("malformed {api_key:?} v{version} request: {source}")]
    Malformed {
        api_key: ApiKey,
        version: i16,
        source: SchemaError,
    },
    #[error(
        "{api_key:?} v{version} request would take {decoded_bytes} bytes decoded, over the {max} a request may take"
    )]
    TooCostly {
        api_key: ApiKey,
        version: i16,
        decoded_bytes: usize,
        max: usize,
    },
    #[error("malformed {api_key:?} v{version} request body")]
    BadBody {
        api_key: ApiKey,
        version: i16,
        #[source]
        source: anyhow::Error,
    },
    #[error("cannot encode the {api_key:?} v{version} response")]
    Encode {
        api_key: ApiKey,
        version: i16,
        #[source]
        source: anyhow::Error,
    },
}

/// Checks a size prefix before anything is allocated for the frame.
pub fn frame_size(prefix: [u8; SIZE_PREFIX_BYTES], max: usize) -> Result<usize, FrameError> {
    let size = i32::from_be_bytes(prefix);
    if size <= 0 {
        return Err(FrameError::NotPositive(size));
    }
    let bytes = size as usize;
    if bytes > max {
        return Err(FrameError::TooLarge { size, max });
    }
    Ok(bytes)
}

/// A request whose header is decoded; the body is decoded by its handler.
#[derive(Debug, Clone)]
pub struct Request {
    pub api_key: ApiKey,
    pub header: RequestHeader,
    pub body: Bytes,
    /// The client's address as Kafka prints it (`/127.0.0.1`), set by the
    /// connection; empty when unknown.
    pub client_host: String,
    /// The listener the request came in on (its name: Metadata answers
    /// with the brokers' addresses on it), set by the connection.
    pub listener: std::sync::Arc<str>,
    /// Who sent it: the SASL user, a client certificate's subject, or
    /// `User:ANONYMOUS` (Kafka's principal), set by the connection.
    pub principal: std::sync::Arc<str>,
    /// What the body passed: the pre-decode walk's bound on the heap its
    /// decoding takes. `None` when the body has not been walked (no table
    /// for this API and version: the request is not decoded by
    /// `kafka-protocol`, or not served).
    pub checked: Option<schema::Checked>,
}

impl Request {
    pub fn version(&self) -> i16 {
        self.header.request_api_version
    }
    pub fn correlation_id(&self) -> i32 {
        self.header.correlation_id
    }
}

/// Decodes the header of one request frame (without its size prefix) and
/// walks its body along the API's table ([`schema::check`]): a body that
/// could make the decoder allocate more than its bytes justify, or more
/// than [`DECODED_BYTES_MAX_PER_REQUEST`], is refused here, before any
/// handler decodes it.
pub fn decode_request(frame: Bytes) -> Result<Request, FrameError> {
    let Some(prefix) = frame.first_chunk::<HEADER_PREFIX_BYTES>() else {
        return Err(FrameError::Truncated { have: frame.len() });
    };
    let mut prefix: &[u8] = prefix;
    let (raw_key, version, correlation_id) = (prefix.get_i16(), prefix.get_i16(), prefix.get_i32());
    let api_key = ApiKey::try_from(raw_key).map_err(|_| FrameError::UnknownApiKey {
        api_key: raw_key,
        correlation_id,
    })?;
    let mut body = frame;
    let header = RequestHeader::decode(&mut body, api_key.request_header_version(version))
        .map_err(|source| FrameError::BadHeader {
            api_key,
            version,
            source,
        })?;
    let checked = check_body(api_key, version, &body)?;
    Ok(Request {
        api_key,
        header,
        body,
        client_host: String::new(),
        listener: std::sync::Arc::from(DEFAULT_LISTENER),
        principal: std::sync::Arc::from(ANONYMOUS),
        checked,
    })
}

/// The pre-decode walk of a body, when its API and version have a table.
pub fn check_body(
    api_key: ApiKey,
    version: i16,
    body: &[u8],
) -> Result<Option<schema::Checked>, FrameError> {
    let Some(message) = schema::request(api_key).filter(|m| m.versions.contains(version)) else {
        return Ok(None);
    };
    let checked =
        schema::check(message, version, body).map_err(|source| FrameError::Malformed {
            api_key,
            version,
            source,
        })?;
    if checked.decoded_bytes > DECODED_BYTES_MAX_PER_REQUEST {
        return Err(FrameError::TooCostly {
            api_key,
            version,
            decoded_bytes: checked.decoded_bytes,
            max: DECODED_BYTES_MAX_PER_REQUEST,
        });
    }
    Ok(Some(checked))
}

/// Encodes a whole response frame (size prefix, header, body) for a request
/// of `api_key` at `version`, counting the error codes it carries.
pub fn encode_response<R: Encodable + crate::handlers::error_codes::ErrorCodes>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
) -> Result<Bytes, FrameError> {
    encode_response_into(
        api_key,
        version,
        correlation_id,
        body,
        BytesMut::with_capacity,
        |out| Ok(out.freeze()),
    )
}

/// [`encode_response`] into the buffer `buffer` makes for a frame of the
/// length it is given; `finish` turns the filled buffer into the result.
pub(crate) fn encode_response_into<R, B, T>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
    buffer: impl FnOnce(usize) -> B,
    finish: impl FnOnce(B) -> anyhow::Result<T>,
) -> Result<T, FrameError>
where
    R: Encodable + crate::handlers::error_codes::ErrorCodes,
    B: ByteBufMut,
{
    body.error_codes(&mut |code| {
        if code != 0 {
            crate::metrics::record_error(api_key, version, code);
        }
    });
    let encode = || -> anyhow::Result<T> {
        let header = ResponseHeader::default().with_correlation_id(correlation_id);
        let header_version = api_key.response_header_version(version);
        let size = header.compute_size(header_version)? + body.compute_size(version)?;
        let mut out = buffer(SIZE_PREFIX_BYTES + size);
        out.put_i32(i32::try_from(size)?);
        header.encode(&mut out, header_version)?;
        body.encode(&mut out, version)?;
        anyhow::ensure!(
            out.offset() == SIZE_PREFIX_BYTES + size,
            "encoded size differs from computed size"
        );
        finish(out)
    };
    encode().map_err(|source| FrameError::Encode {
        api_key,
        version,
        source,
    })
}

#[cfg(test)]
mod tests {
    use bytes::BufMut;
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn size_prefix_is_checked_before_allocation() {
        assert_eq!(frame_size(100i32.to_be_bytes(), 1000).unwrap(), 100);
        assert!(matches!(
            frame_size(0i32.to_be_bytes(), 1000),
            Err(FrameError::NotPositive(0))
        ));
        assert!(matches!(
            frame_size((-5i32).to_be_bytes(), 1000),
            Err(FrameError::NotPositive(-5))
        ));
        let two_gib = i32::MAX.to_be_bytes();
        assert!(matches!(
            frame_size(two_gib, 100 << 20),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn unknown_api_keys_and_short_frames_are_typed_errors() {
        let unknown = Bytes::from_static(&[0x7f, 0x00, 0, 1, 0, 0, 0, 42, 0, 0]);
        assert!(matches!(
            decode_request(unknown),
            Err(FrameError::UnknownApiKey {
                api_key: 0x7f00,
                correlation_id: 42
            })
        ));
        assert!(matches!(
            decode_request(Bytes::from_static(&[0, 18, 0])),
            Err(FrameError::Truncated { have: 3 })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig { rng_seed: proptest::test_runner::RngSeed::Fixed(2026), failure_persistence: None, ..ProptestConfig::default() })]
        #[test]
        fn random_frames_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256), key in 0i16..80, version in -1i16..20) {
            let _ = decode_request(Bytes::from(bytes.clone()));
            let mut framed = BytesMut::new();
            framed.put_i16(key);
            framed.put_i16(version);
            framed.put_slice(&bytes);
            if let Ok(request) = decode_request(framed.freeze()) {
                let _ = crate::handlers::dispatch_stateless(&request);
            }
        }
    }
}
