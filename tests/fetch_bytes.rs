//! Fetch hands out record batches without copying them into the response
//! (net/src/rope.rs): the bytes a client reads must be exactly the batches
//! written, whichever shard owns the partition, whether they come from the
//! tail cache or from the disk (and from sealed segments whose indexes and
//! files the shard's cache let go), at every offset, for limits at and around
//! every batch boundary, at every Fetch version that names topics
//! differently, one partition or several per request.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, MetadataRequest, MetadataResponse, ProduceRequest,
    ProduceResponse,
};
use net::protocol::schema::generate::Rng;

use common::Conn;

const TOPIC: &str = "fetch-bytes";
const PARTITIONS: i32 = 4;

/// A batch as the log stores it: its offsets and its bytes.
#[derive(Debug, Clone)]
struct Stored {
    base: i64,
    last: i64,
    bytes: Vec<u8>,
}

/// Produces batches of mixed sizes (a few bytes to 150 KiB, around the
/// broker's copy-or-share threshold too) to every partition; returns what
/// each partition holds.
fn produce_mixed(client: &mut Conn, rng: &mut Rng) -> HashMap<i32, Vec<Stored>> {
    const VALUE_BYTES: [usize; 7] = [0, 10, 700, 1_950, 2_100, 20_000, 150_000];
    let mut stored: HashMap<i32, Vec<Stored>> = HashMap::new();
    for round in 0..14 {
        for partition in 0..PARTITIONS {
            let count = 1 + rng.below(4) as i32;
            let value_bytes = VALUE_BYTES[rng.below(VALUE_BYTES.len() as u64) as usize];
            let fill = (round * PARTITIONS + partition) as u8;
            let batch =
                engine::batch::builder::simple_batch(count, value_bytes, 1_700_000_000_000, fill);
            let request = ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(10_000)
                .with_topic_data(vec![
                    TopicProduceData::default()
                        .with_name(common::topic_name(TOPIC))
                        .with_partition_data(vec![
                            PartitionProduceData::default()
                                .with_index(partition)
                                .with_records(Some(Bytes::from(batch.clone()))),
                        ]),
                ]);
            let response: ProduceResponse = client.call(ApiKey::Produce, 9, &request);
            let answer = &response.responses[0].partition_responses[0];
            assert_eq!(answer.error_code, 0, "produce to {partition}");
            let mut bytes = batch;
            bytes[..8].copy_from_slice(&answer.base_offset.to_be_bytes());
            stored.entry(partition).or_default().push(Stored {
                base: answer.base_offset,
                last: answer.base_offset + i64::from(count) - 1,
                bytes,
            });
        }
    }
    stored
}

/// The batches in a fetched records field, checked against what the
/// partition stores: consecutive whole batches, the first holding
/// `offset`, every byte as written. Returns how many bytes there were.
fn check_records(records: &[u8], stored: &[Stored], offset: i64, context: &str) -> usize {
    let mut at = stored
        .iter()
        .position(|b| b.last >= offset)
        .unwrap_or_else(|| panic!("{context}: offset {offset} past the end"));
    let mut rest = records;
    while !rest.is_empty() {
        let expected = stored
            .get(at)
            .unwrap_or_else(|| panic!("{context}: more batches than stored"));
        assert!(
            rest.len() >= expected.bytes.len(),
            "{context}: a partial batch at {}",
            expected.base
        );
        let (batch, next) = rest.split_at(expected.bytes.len());
        // The partition leader epoch (bytes 12..16) is the broker's to set.
        assert_eq!(
            batch[..12],
            expected.bytes[..12],
            "{context}: batch at {} (offset, length)",
            expected.base
        );
        assert_eq!(
            batch[16..],
            expected.bytes[16..],
            "{context}: batch at {} (bytes)",
            expected.base
        );
        rest = next;
        at += 1;
    }
    records.len()
}

fn fetch_request(
    version: i16,
    topic_id: uuid::Uuid,
    wanted: &[(i32, i64, i32)],
    max: i32,
) -> FetchRequest {
    let partitions = wanted
        .iter()
        .map(|&(partition, offset, max_bytes)| {
            FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(max_bytes)
        })
        .collect();
    let topic = FetchTopic::default().with_partitions(partitions);
    // v13+ names topics by id (KIP-516).
    let topic = if version >= 13 {
        topic.with_topic_id(topic_id)
    } else {
        topic.with_topic(common::topic_name(TOPIC))
    };
    FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(max)
        .with_topics(vec![topic])
}

/// Limits at and around the boundaries of the batches from `offset` on.
fn limits_around(stored: &[Stored], offset: i64) -> Vec<i32> {
    let mut limits = vec![1, 1 << 20];
    let mut sum = 0;
    for batch in stored.iter().filter(|b| b.last >= offset).take(3) {
        sum += batch.bytes.len() as i32;
        limits.extend([sum - 1, sum, sum + 1]);
    }
    limits
}

fn fetch_everything(
    addr: SocketAddr,
    stored: &HashMap<i32, Vec<Stored>>,
    rng: &mut Rng,
    what: &str,
) {
    let mut client = Conn::open(addr);
    let metadata: MetadataResponse = client.call(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(common::topic_name(TOPIC))),
        ])),
    );
    let topic_id = metadata.topics[0].topic_id;
    const VERSIONS: [i16; 6] = [4, 7, 11, 12, 13, 16];
    // One partition per request: every offset, every limit around it.
    for (&partition, batches) in stored {
        let end = batches.last().unwrap().last + 1;
        for offset in 0..end {
            for max in limits_around(batches, offset) {
                let version = VERSIONS[rng.below(VERSIONS.len() as u64) as usize];
                let context =
                    format!("{what}: v{version} partition {partition} at {offset}, max {max}");
                let request =
                    fetch_request(version, topic_id, &[(partition, offset, max)], 1 << 24);
                let response: FetchResponse = client.call(ApiKey::Fetch, version, &request);
                let data = &response.responses[0].partitions[0];
                assert_eq!(data.error_code, 0, "{context}");
                assert_eq!(data.high_watermark, end, "{context}");
                let records = data.records.clone().unwrap_or_default();
                let first = batches.iter().find(|b| b.last >= offset).unwrap();
                assert!(
                    !records.is_empty(),
                    "{context}: at least one batch (KIP-74)"
                );
                let got = check_records(&records, batches, offset, &context);
                assert!(
                    got <= (max as usize).max(first.bytes.len()),
                    "{context}: {got} bytes"
                );
            }
        }
    }
    // A consumer behind: each partition from its start to its end, each
    // Fetch where the last one stopped (what the broker reads ahead for:
    // engine/src/log/read_ahead.rs), at a few partition limits.
    for max in [1, 40_000, 300_000] {
        for (&partition, batches) in stored {
            let end = batches.last().unwrap().last + 1;
            let mut offset = 0;
            while offset < end {
                let version = VERSIONS[rng.below(VERSIONS.len() as u64) as usize];
                let context = format!(
                    "{what}: reading on, v{version} partition {partition} at {offset}, max {max}"
                );
                let request =
                    fetch_request(version, topic_id, &[(partition, offset, max)], 1 << 24);
                let response: FetchResponse = client.call(ApiKey::Fetch, version, &request);
                let data = &response.responses[0].partitions[0];
                assert_eq!(data.error_code, 0, "{context}");
                let records = data.records.clone().unwrap_or_default();
                let got = check_records(&records, batches, offset, &context);
                assert!(got > 0, "{context}: at least one batch (KIP-74)");
                // On after the last batch served.
                let (from, mut served) = (offset, 0);
                for batch in batches.iter().filter(|b| b.last >= from) {
                    if served == got {
                        break;
                    }
                    served += batch.bytes.len();
                    offset = batch.last + 1;
                }
            }
        }
    }
    // Every partition in one request, under a total limit.
    for round in 0..200 {
        let version = VERSIONS[rng.below(VERSIONS.len() as u64) as usize];
        let wanted: Vec<(i32, i64, i32)> = (0..PARTITIONS)
            .map(|p| {
                let end = stored[&p].last().unwrap().last + 1;
                (
                    p,
                    rng.below(end as u64) as i64,
                    1 + rng.below(400_000) as i32,
                )
            })
            .collect();
        let total_max = 1 + rng.below(600_000) as i32;
        let context = format!("{what}: round {round}, v{version}, {wanted:?} under {total_max}");
        let request = fetch_request(version, topic_id, &wanted, total_max);
        let response: FetchResponse = client.call(ApiKey::Fetch, version, &request);
        let mut total = 0;
        for data in &response.responses[0].partitions {
            let (_, offset, _) = wanted[data.partition_index as usize];
            assert_eq!(data.error_code, 0, "{context}");
            let records = data.records.clone().unwrap_or_default();
            total += check_records(
                &records,
                &stored[&data.partition_index],
                offset,
                &format!("{context}, partition {}", data.partition_index),
            );
        }
        assert!(total > 0, "{context}: something (KIP-74)");
    }
}

#[test]
fn fetched_bytes_equal_the_written_batches_from_cache_and_from_disk() {
    let seed: u64 = std::env::var("SHARDLOG_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0xfe7c_4b17);
    eprintln!("seed {seed} (replay with SHARDLOG_TEST_SEED={seed})");
    let mut rng = Rng::new(seed);
    let tmp = tempfile::tempdir().unwrap();
    let addr = common::free_addr();
    // A tail cache of one byte per shard: every read but the newest
    // batch's comes from the disk.
    for (what, toml) in [
        ("tail cache", String::new()),
        ("disk", "tail-cache-bytes-per-shard = 1\n".to_string()),
        // Small segments, and a segment cache that keeps nothing: every
        // read of a sealed segment loads its index and opens its file.
        (
            "sealed uncached",
            "tail-cache-bytes-per-shard = 1\nindex-cache-bytes-per-shard = 0\n\
             open-segment-files-per-shard = 1\n[topic-defaults]\n\"segment.bytes\" = 200000\n"
                .to_string(),
        ),
    ] {
        let dir = tmp.path().join(what.replace(' ', "-"));
        std::fs::create_dir_all(&dir).unwrap();
        let http = common::free_addr();
        let toml = format!("http-listen = \"{http}\"\n{toml}");
        let broker = common::start_configured(&dir, addr, &toml);
        common::create_topic_raw(addr, TOPIC, PARTITIONS);
        let mut client = Conn::open(addr);
        let stored = produce_mixed(&mut client, &mut rng);
        fetch_everything(addr, &stored, &mut rng, what);
        // Reads from the disk that read on took what was read ahead.
        let (status, _, metrics) = common::http_request(http, "GET", "/metrics", "");
        assert_eq!(status, 200, "{metrics}");
        let taken: f64 = metrics
            .lines()
            .filter(|l| l.starts_with("shardlog_shard_read_aheads_taken_total"))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum();
        if what == "tail cache" {
            assert_eq!(taken, 0.0, "{what}: nothing read from the disk");
        } else {
            assert!(taken > 0.0, "{what}: no read ahead taken");
        }
        assert!(common::stop(broker).success());
    }
}
