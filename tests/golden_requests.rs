//! Requests exactly as librdkafka 2.16 and kafka-python 3.0.12 sent them
//! (net/tests/golden/, captured by capture.py there), replayed byte for
//! byte against a real broker: Metadata auto-creates the topic, Produce
//! stores the client's batch (lz4 from librdkafka, gzip from kafka-python),
//! and Fetch returns that batch byte-identical.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, MetadataRequest, MetadataResponse, ProduceRequest,
    ProduceResponse, ResponseHeader,
};
use kafka_protocol::protocol::Decodable;
use net::frame::{Request, decode_request};

use common::{free_addr, start};

fn golden(name: &str) -> Vec<u8> {
    let path = format!("{}/net/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The golden frame decoded as the broker decodes it.
fn request(frame: &[u8]) -> Request {
    let size = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
    assert_eq!(size, frame.len() - 4, "golden frame is whole");
    decode_request(Bytes::copy_from_slice(&frame[4..])).unwrap()
}

/// Sends the frame as captured; returns the response body after checking
/// its header carries the request's correlation id.
fn replay<R: Decodable>(addr: SocketAddr, frame: &[u8]) -> R {
    let request = request(frame);
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(frame).unwrap();
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).unwrap();
    let mut response = vec![0u8; u32::from_be_bytes(size) as usize];
    stream.read_exact(&mut response).unwrap();
    let mut response = Bytes::from(response);
    let version = request.version();
    let header = ResponseHeader::decode(
        &mut response,
        request.api_key.response_header_version(version),
    )
    .unwrap();
    assert_eq!(header.correlation_id, request.correlation_id());
    let body = R::decode(&mut response, version).unwrap();
    assert!(!response.has_remaining(), "nothing after the body");
    body
}

fn body<T: Decodable>(request: &Request) -> T {
    T::decode(&mut request.body.clone(), request.version()).unwrap()
}

/// One client's captured Metadata, Produce and Fetch for `topic`.
struct Capture {
    client_id: &'static str,
    topic: &'static str,
    metadata: &'static str,
    produce: &'static str,
    fetch: &'static str,
    /// The codec in the produced batch's attributes.
    codec: i16,
}

const CAPTURES: [Capture; 2] = [
    Capture {
        client_id: "golden-librdkafka",
        topic: "golden-rd",
        metadata: "metadata_v12_librdkafka_3.bin",
        produce: "produce_v10_librdkafka_1.bin",
        fetch: "fetch_v12_librdkafka_1.bin",
        codec: 3, // lz4
    },
    Capture {
        client_id: "golden-kafka-python",
        topic: "golden-kp",
        metadata: "metadata_v12_kafka_python_4.bin",
        produce: "produce_v9_kafka_python_1.bin",
        fetch: "fetch_v12_kafka_python_1.bin",
        codec: 1, // gzip
    },
];

#[test]
fn captured_requests_decode_as_the_clients_meant_them() {
    for c in &CAPTURES {
        let metadata = request(&golden(c.metadata));
        assert_eq!(
            (metadata.api_key, metadata.version()),
            (ApiKey::Metadata, 12)
        );
        assert_eq!(metadata.header.client_id.as_deref(), Some(c.client_id));
        let m: MetadataRequest = body(&metadata);
        let names: Vec<_> = m
            .topics
            .unwrap()
            .into_iter()
            .map(|t| t.name.unwrap().0.to_string())
            .collect();
        assert_eq!(names, [c.topic]);
        assert!(m.allow_auto_topic_creation);

        let produce = request(&golden(c.produce));
        assert_eq!(produce.api_key, ApiKey::Produce);
        let p: ProduceRequest = body(&produce);
        assert_eq!(p.acks, -1, "{}: acks=all", c.client_id);
        let data = &p.topic_data[0];
        assert_eq!(data.name.0.as_str(), c.topic);
        let records = data.partition_data[0].records.clone().unwrap();
        assert_eq!(records[16], 2, "magic 2");
        let attributes = i16::from_be_bytes([records[21], records[22]]);
        assert_eq!(attributes & 7, c.codec, "{}", c.client_id);

        let fetch = request(&golden(c.fetch));
        assert_eq!((fetch.api_key, fetch.version()), (ApiKey::Fetch, 12));
        let f: FetchRequest = body(&fetch);
        assert_eq!(f.topics[0].topic.0.as_str(), c.topic);
        assert_eq!(f.topics[0].partitions[0].fetch_offset, 0);
    }
}

#[test]
fn captured_requests_replayed_against_the_broker_get_the_right_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start(tmp.path(), addr, "info");
    for c in &CAPTURES {
        let metadata: MetadataResponse = replay(addr, &golden(c.metadata));
        assert_eq!(metadata.brokers.len(), 1);
        assert_eq!(metadata.brokers[0].port, i32::from(addr.port()));
        let topic = &metadata.topics[0];
        assert_eq!(
            (topic.error_code, topic.partitions.len()),
            (0, 1),
            "{}: auto-created",
            c.topic
        );

        let produce_frame = golden(c.produce);
        let produced: ProduceRequest = body(&request(&produce_frame));
        let sent = produced.topic_data[0].partition_data[0]
            .records
            .clone()
            .unwrap();
        let answer: ProduceResponse = replay(addr, &produce_frame);
        let partition = &answer.responses[0].partition_responses[0];
        assert_eq!(
            (partition.error_code, partition.base_offset),
            (0, 0),
            "{}",
            c.client_id
        );

        let fetched: FetchResponse = replay(addr, &golden(c.fetch));
        let data = &fetched.responses[0].partitions[0];
        assert_eq!(data.error_code, 0);
        assert_eq!(data.high_watermark, 5, "{}: five messages", c.client_id);
        assert_eq!(
            data.records.as_deref(),
            Some(&sent[..]),
            "{}: the batch comes back as the client sent it",
            c.client_id
        );
    }
}
