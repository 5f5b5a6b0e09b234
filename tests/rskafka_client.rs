//! rskafka (InfluxData's minimal async Rust client, with its own protocol
//! code and version choices) against a real broker: topic creation, produce
//! in every codec, fetch, ListOffsets at the ends and by time, DeleteRecords,
//! and what a fetch below the new log start gets (OFFSET_OUT_OF_RANGE).
//! rskafka was one of the clients the ListOffsets v1-v3 encode bug broke.

mod common;

use std::collections::BTreeMap;

use rskafka::chrono::{TimeZone, Utc};
use rskafka::client::ClientBuilder;
use rskafka::client::error::{Error, ProtocolError};
use rskafka::client::partition::{Compression, OffsetAt, UnknownTopicHandling};
use rskafka::record::Record;

use common::{free_addr, start};

const TOPIC: &str = "rskafka";
const PER_CODEC: i64 = 50;
const BASE_MS: i64 = 1_700_000_000_000;

fn record(i: i64) -> Record {
    Record {
        key: Some(format!("key-{i}").into_bytes()),
        value: Some(
            format!("value {i} ")
                .repeat(1 + (i % 9) as usize)
                .into_bytes(),
        ),
        headers: BTreeMap::from([("n".to_string(), i.to_be_bytes().to_vec())]),
        // One second apart, so every record is found by its own time.
        timestamp: Utc.timestamp_millis_opt(BASE_MS + i * 1000).unwrap(),
    }
}

#[test]
fn rskafka_produces_fetches_lists_offsets_and_deletes_records() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start(tmp.path(), addr, "warn");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = ClientBuilder::new(vec![addr.to_string()])
            .build()
            .await
            .unwrap();
        let controller = client.controller_client().unwrap();
        controller.create_topic(TOPIC, 1, 1, 5_000).await.unwrap();
        let topics = client.list_topics().await.unwrap();
        assert!(topics.iter().any(|t| t.name == TOPIC), "{topics:?}");
        let partition = client
            .partition_client(TOPIC, 0, UnknownTopicHandling::Retry)
            .await
            .unwrap();

        let codecs = [
            Compression::NoCompression,
            Compression::Gzip,
            Compression::Lz4,
            Compression::Snappy,
            Compression::Zstd,
        ];
        let mut next = 0i64;
        for codec in codecs {
            let records: Vec<Record> = (next..next + PER_CODEC).map(record).collect();
            let offsets = partition.produce(records, codec).await.unwrap();
            let expected: Vec<i64> = (next..next + PER_CODEC).collect();
            assert_eq!(offsets, expected, "{codec:?}: offsets");
            next += PER_CODEC;
        }

        let mut read = Vec::new();
        while (read.len() as i64) < next {
            let (batch, high_watermark) = partition
                .fetch_records(read.len() as i64, 1..1_000_000, 1_000)
                .await
                .unwrap();
            assert_eq!(high_watermark, next);
            assert!(!batch.is_empty(), "progress at {}", read.len());
            read.extend(batch);
        }
        for (i, got) in read.iter().enumerate() {
            assert_eq!(got.offset, i as i64);
            assert_eq!(got.record, record(i as i64), "record {i}");
        }
        println!("rskafka: {next} records in five codecs read back");

        assert_eq!(partition.get_offset(OffsetAt::Earliest).await.unwrap(), 0);
        assert_eq!(partition.get_offset(OffsetAt::Latest).await.unwrap(), next);
        let at = Utc.timestamp_millis_opt(BASE_MS + 137 * 1000).unwrap();
        assert_eq!(
            partition.get_offset(OffsetAt::Timestamp(at)).await.unwrap(),
            137
        );

        partition.delete_records(120, 5_000).await.unwrap();
        assert_eq!(partition.get_offset(OffsetAt::Earliest).await.unwrap(), 120);
        let below = partition.fetch_records(0, 1..1_000_000, 0).await;
        assert!(
            matches!(
                below,
                Err(Error::ServerError {
                    protocol_error: ProtocolError::OffsetOutOfRange,
                    ..
                })
            ),
            "{below:?}"
        );
        let (from_start, _) = partition.fetch_records(120, 1..1_000_000, 0).await.unwrap();
        assert_eq!(from_start.first().map(|r| r.offset), Some(120));
        println!("rskafka: offsets listed, records deleted below 120");

        controller.delete_topic(TOPIC, 5_000).await.unwrap();
        let topics = client.list_topics().await.unwrap();
        assert!(topics.iter().all(|t| t.name != TOPIC), "{topics:?}");
    });
}
