//! ApiVersions against bytes captured from real clients.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, ResponseHeader};
use kafka_protocol::protocol::Decodable;
use net::frame::decode_request;
use net::handlers::{HANDLERS, Outcome, dispatch_stateless as dispatch};

fn golden(name: &str) -> Bytes {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let size = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
    assert_eq!(size, bytes.len() - 4, "golden frame is whole");
    Bytes::from(bytes).slice(4..)
}

/// Decodes a response frame (with its size prefix) of ApiVersions `version`.
fn decode_response(mut frame: Bytes, version: i16) -> (i32, ApiVersionsResponse) {
    let size = frame.get_i32() as usize;
    assert_eq!(size, frame.len());
    // ApiVersions responses always use header v0, even at flexible versions.
    let header = ResponseHeader::decode(&mut frame, 0).unwrap();
    let body = ApiVersionsResponse::decode(&mut frame, version).unwrap();
    assert!(frame.is_empty(), "nothing after the body");
    (header.correlation_id, body)
}

#[test]
fn kafka_python_api_versions_v4_gets_our_table() {
    let request = decode_request(golden("api_versions_v4_kafka_python_1.bin")).unwrap();
    assert_eq!(
        (request.api_key, request.version()),
        (ApiKey::ApiVersions, 4)
    );
    assert_eq!(
        request.header.client_id.as_deref(),
        Some("kafka-python-3.0.12")
    );
    let Outcome::Respond(frame) = dispatch(&request) else {
        panic!("no response")
    };
    let (correlation_id, response) = decode_response(frame, 4);
    assert_eq!(correlation_id, request.correlation_id());
    assert_eq!(response.error_code, 0);
    assert_eq!(response.api_keys.len(), HANDLERS.len());
    let own = response
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::ApiVersions as i16)
        .unwrap();
    assert_eq!((own.min_version, own.max_version), (0, 4));
}

#[test]
fn librdkafka_api_versions_v3_gets_our_table_with_produce_from_v0() {
    let request = decode_request(golden("api_versions_v3_librdkafka_1.bin")).unwrap();
    assert_eq!(
        (request.api_key, request.version()),
        (ApiKey::ApiVersions, 3)
    );
    assert_eq!(request.header.client_id.as_deref(), Some("rdkafka"));
    let Outcome::Respond(frame) = dispatch(&request) else {
        panic!("no response")
    };
    let (correlation_id, response) = decode_response(frame, 3);
    assert_eq!(correlation_id, request.correlation_id());
    assert_eq!(response.error_code, 0);
    let produce = response
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::Produce as i16)
        .unwrap();
    // librdkafka < 2.10 compresses only when it sees Produce v0 (KAFKA-18659).
    assert_eq!((produce.min_version, produce.max_version), (0, 12));
}

#[test]
fn a_newer_api_versions_version_is_answered_at_v0_with_unsupported_version() {
    let mut frame = golden("api_versions_v4_kafka_python_1.bin").to_vec();
    frame[2..4].copy_from_slice(&9i16.to_be_bytes());
    let request = decode_request(Bytes::from(frame)).unwrap();
    let Outcome::Respond(frame) = dispatch(&request) else {
        panic!("no response")
    };
    let (_, response) = decode_response(frame, 0);
    assert_eq!(response.error_code, 35, "UNSUPPORTED_VERSION");
    assert!(
        !response.api_keys.is_empty(),
        "the table lets the client retry at a version we serve"
    );
}

#[test]
fn apis_we_do_not_serve_close_the_connection() {
    let mut frame = golden("api_versions_v4_kafka_python_1.bin").to_vec();
    frame[0..2].copy_from_slice(&(ApiKey::SaslHandshake as i16).to_be_bytes());
    let request = decode_request(Bytes::from(frame)).unwrap();
    assert!(matches!(
        dispatch(&request),
        Outcome::Unsupported {
            api_key: ApiKey::SaslHandshake,
            ..
        }
    ));
}
