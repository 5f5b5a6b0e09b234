//! Criterion benchmarks of the protocol hot paths: decoding a Produce
//! request and encoding a Fetch response (kafka-protocol's generated
//! codecs, as the broker uses them), the client's side of both (Produce
//! encode, Fetch decode), the request framing, validating a producer's
//! batch (what the broker checks before appending) and CRC-32C over a
//! batch; the pre-decode walk of a request beside its decode. The
//! question they answer: does the hot path need its own
//! zero-copy framing, or are the generated codecs cheap next to the record
//! bytes they carry?
//!
//! `cargo bench -p net --bench protocol` (filters work: `-- produce`).

use std::hint::black_box;

use bytes::{BufMut, Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use engine::batch::builder::simple_batch;
use engine::batch::{ValidateMode, validate};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchResponse, ProduceRequest, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use net::frame::{decode_request, encode_response};
use net::rope::{RecordSlices, Splicer};

/// One batch of 1 KiB records per partition, about `batch_bytes` each.
fn batch(batch_bytes: usize) -> Bytes {
    let one = simple_batch(1, 1_000, 1, 7).len() - 61;
    Bytes::from(simple_batch(
        (batch_bytes / one).max(1) as i32,
        1_000,
        1_700_000_000_000,
        7,
    ))
}

/// A Produce v9 frame (without its size prefix) for `partitions`
/// partitions of one topic, each with `records`.
fn produce_frame(partitions: i32, records: &Bytes) -> Bytes {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("bench")))
                .with_partition_data(
                    (0..partitions)
                        .map(|p| {
                            PartitionProduceData::default()
                                .with_index(p)
                                .with_records(Some(records.clone()))
                        })
                        .collect(),
                ),
        ]);
    let mut frame = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(ApiKey::Produce as i16)
        .with_request_api_version(9)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("bench")))
        .encode(&mut frame, ApiKey::Produce.request_header_version(9))
        .unwrap();
    request.encode(&mut frame, 9).unwrap();
    frame.freeze()
}

fn produce_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("produce_decode");
    for (label, partitions, size) in [("1x1MiB", 1, 1 << 20), ("16x64KiB", 16, 64 << 10)] {
        let records = batch(size);
        let frame = produce_frame(partitions, &records);
        group.throughput(Throughput::Bytes(frame.len() as u64));
        group.bench_function(label, |b| {
            b.iter(|| {
                let request = decode_request(black_box(frame.clone())).unwrap();
                let body = ProduceRequest::decode(&mut request.body.clone(), 9).unwrap();
                black_box(body.topic_data.len())
            })
        });
    }
    group.finish();
}

fn fetch_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("fetch_encode");
    for (label, partitions, size) in [("1x1MiB", 1, 1 << 20), ("16x64KiB", 16, 64 << 10)] {
        let records = batch(size);
        let response = fetch_response(partitions, &records);
        group.throughput(Throughput::Bytes((size * partitions as usize) as u64));
        group.bench_function(label, |b| {
            b.iter(|| {
                black_box(
                    encode_response(ApiKey::Fetch, 12, 1, &response)
                        .unwrap()
                        .len(),
                )
            })
        });
        // The broker's way: the records spliced in, not copied (net::rope).
        group.bench_function(format!("spliced/{label}"), |b| {
            b.iter(|| {
                let mut splicer = Splicer::default();
                let mut response = fetch_response(partitions, &Bytes::new());
                for partition in &mut response.responses[0].partitions {
                    partition.records = Some(splicer.field(RecordSlices::from(records.clone())));
                }
                black_box(
                    splicer
                        .encode(ApiKey::Fetch, 12, 1, &response)
                        .unwrap()
                        .len(),
                )
            })
        });
    }
    group.finish();
}

fn fetch_response(partitions: i32, records: &Bytes) -> FetchResponse {
    FetchResponse::default().with_responses(vec![
        FetchableTopicResponse::default()
            .with_topic(TopicName(StrBytes::from_static_str("bench")))
            .with_partitions(
                (0..partitions)
                    .map(|p| {
                        PartitionData::default()
                            .with_partition_index(p)
                            .with_high_watermark(1_000)
                            .with_preferred_read_replica(BrokerId(-1))
                            .with_records(Some(records.clone()))
                    })
                    .collect(),
            ),
    ])
}

/// The client's half: encoding a Produce, decoding a Fetch response.
fn client_side(c: &mut Criterion) {
    let mut group = c.benchmark_group("client_side");
    for (label, partitions, size) in [("1x1MiB", 1, 1 << 20), ("16x64KiB", 16, 64 << 10)] {
        let records = batch(size);
        group.throughput(Throughput::Bytes((size * partitions as usize) as u64));
        group.bench_function(format!("produce_encode/{label}"), |b| {
            b.iter(|| black_box(produce_frame(partitions, black_box(&records)).len()))
        });
        let mut body = BytesMut::new();
        fetch_response(partitions, &records)
            .encode(&mut body, 12)
            .unwrap();
        let body = body.freeze();
        group.bench_function(format!("fetch_decode/{label}"), |b| {
            b.iter(|| {
                let response = FetchResponse::decode(&mut black_box(body.clone()), 12).unwrap();
                black_box(response.responses.len())
            })
        });
    }
    group.finish();
}

/// What a Produce's records go through before they are appended: framing,
/// magic, CRC-32C, offsets and counts, sizes.
fn batch_validation(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch_validate");
    for (label, size) in [("16KiB", 16 << 10), ("1MiB", 1 << 20)] {
        let records = batch(size);
        let mode = ValidateMode::Produce {
            max_message_bytes: 8 << 20,
        };
        group.throughput(Throughput::Bytes(records.len() as u64));
        group.bench_function(label, |b| {
            b.iter(|| {
                let valid = validate(black_box(&records), 0, mode).all(|batch| batch.is_ok());
                assert!(valid);
            })
        });
    }
    group.finish();
}

/// The pre-decode walk (issue 18) beside the `kafka-protocol` decode it
/// guards, for a Produce with 16 partitions, a Fetch of 1,000 partitions
/// and a Metadata request naming 1,000 topics.
fn request_walk(c: &mut Criterion) {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::{FetchRequest, MetadataRequest};
    use net::protocol::schema;

    fn encoded<T: Encodable>(message: &T, version: i16) -> Bytes {
        let mut out = BytesMut::new();
        message.encode(&mut out, version).unwrap();
        out.freeze()
    }
    let name = |n: usize| TopicName(StrBytes::from_string(format!("topic-{n}")));
    let produce = decode_request(produce_frame(16, &batch(64 << 10)))
        .unwrap()
        .body;
    let fetch = FetchRequest::default().with_max_wait_ms(500).with_topics(
        (0..10)
            .map(|t| {
                FetchTopic::default().with_topic(name(t)).with_partitions(
                    (0..100)
                        .map(|p| {
                            FetchPartition::default()
                                .with_partition(p)
                                .with_fetch_offset(42)
                        })
                        .collect(),
                )
            })
            .collect(),
    );
    let metadata = MetadataRequest::default().with_topics(Some(
        (0..1000)
            .map(|t| MetadataRequestTopic::default().with_name(Some(name(t))))
            .collect(),
    ));
    let cases = [
        (ApiKey::Produce, 9, produce),
        (ApiKey::Fetch, 12, encoded(&fetch, 12)),
        (ApiKey::Metadata, 12, encoded(&metadata, 12)),
    ];
    let mut group = c.benchmark_group("request_walk");
    for (api_key, version, body) in cases {
        let message = schema::request(api_key).unwrap();
        group.bench_function(format!("{api_key:?}/walk"), |b| {
            b.iter(|| black_box(schema::check(message, version, black_box(&body)).unwrap()))
        });
        group.bench_function(format!("{api_key:?}/decode"), |b| {
            b.iter(|| (message.decode)(&mut black_box(body.clone()), version).unwrap())
        });
    }
    group.finish();
}

fn crc(c: &mut Criterion) {
    let mut group = c.benchmark_group("crc32c");
    for (label, size) in [("16KiB", 16 << 10), ("1MiB", 1 << 20)] {
        let mut bytes = BytesMut::with_capacity(size);
        bytes.put_bytes(0xa5, size);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(label, |b| b.iter(|| crc32c::crc32c(black_box(&bytes))));
    }
    group.finish();
}

criterion_group!(
    benches,
    produce_decode,
    fetch_encode,
    client_side,
    batch_validation,
    request_walk,
    crc
);
criterion_main!(benches);
