//! ApiVersions (key 18): the table of served APIs and versions, generated
//! from [`super::HANDLERS`].

use bytes::Bytes;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::Decodable;

use super::{HANDLERS, Handler};
use crate::frame::{FrameError, Request, encode_response};

pub const HANDLER: Handler = Handler {
    api_key: ApiKey::ApiVersions,
    min_version: 0,
    max_version: 4,
};

/// Kafka error codes this handler returns.
const UNSUPPORTED_VERSION: i16 = 35;
const INVALID_REQUEST: i16 = 42;

pub fn handle(request: &Request) -> Result<Bytes, FrameError> {
    let version = request.version();
    let served = (HANDLER.min_version..=HANDLER.max_version).contains(&version);
    // An unsupported version is answered at v0, which every client reads.
    let (version, mut error_code) = if served {
        (version, 0)
    } else {
        (0, UNSUPPORTED_VERSION)
    };
    if served {
        let mut body = request.body.clone();
        if let Err(e) = ApiVersionsRequest::decode(&mut body, version) {
            tracing::info!(error = %e, version, "malformed ApiVersions request");
            error_code = INVALID_REQUEST;
        }
    }
    let response = ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(table());
    encode_response(
        ApiKey::ApiVersions,
        version,
        request.correlation_id(),
        &response,
    )
}

fn table() -> Vec<ApiVersion> {
    HANDLERS
        .iter()
        .map(|h| {
            ApiVersion::default()
                .with_api_key(h.api_key as i16)
                .with_min_version(h.min_version)
                .with_max_version(h.max_version)
        })
        .collect()
}
