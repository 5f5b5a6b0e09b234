//! The per-shard partition table: create, list, delete, reopen, placement.

mod common;

use bytes::Bytes;
use common::*;
use engine::{Error, LogConfig, Offset, PartitionTable, TopicPartition};

#[test]
fn partitions_are_created_listed_deleted_and_reopened() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let table = PartitionTable::open(&data, 0, 1, |_| LogConfig::default(), 0)
            .await
            .unwrap();
        for p in 0..3 {
            let log = table
                .create(TopicPartition::new("orders", p), LogConfig::default(), 0)
                .await
                .unwrap();
            log.append(Bytes::from(batch(&mut Rng(p as u64), 2, 10, 0, false)), 0)
                .await
                .unwrap();
        }
        let again = table
            .create(TopicPartition::new("orders", 1), LogConfig::default(), 0)
            .await;
        assert!(matches!(again, Err(Error::PartitionExists(_))));
        table
            .delete(&TopicPartition::new("orders", 1))
            .await
            .unwrap();
        assert!(!data.join("orders-1").exists());
        assert!(!data.join("orders-1.deleted").exists());
        table.close().await.unwrap();

        let table = PartitionTable::open(&data, 0, 1, |_| LogConfig::default(), 0)
            .await
            .unwrap();
        let names: Vec<String> = table.partitions().iter().map(|tp| tp.to_string()).collect();
        assert_eq!(names, ["orders-0", "orders-2"]);
        let log = table.get(&TopicPartition::new("orders", 2)).unwrap();
        assert_eq!(log.log_end_offset(), Offset(2));
        drop(log); // close waits for every holder of a log to let go
        table.close().await.unwrap();
    });
}

#[test]
fn each_partition_opens_on_exactly_one_shard() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        for p in 0..16 {
            let tp = TopicPartition::new("events", p);
            let owner = PartitionTable::owner(&tp, 2);
            let table = PartitionTable::open(&data, owner, 2, |_| LogConfig::default(), 0)
                .await
                .unwrap();
            table
                .create(tp.clone(), LogConfig::default(), 0)
                .await
                .unwrap();
            let other = table
                .create(TopicPartition::new("events", p), LogConfig::default(), 0)
                .await;
            assert!(matches!(other, Err(Error::PartitionExists(_))));
            table.close().await.unwrap();
            let wrong = PartitionTable::open(&data, 1 - owner, 2, |_| LogConfig::default(), 0)
                .await
                .unwrap();
            let refused = wrong
                .create(
                    TopicPartition::new("events", p + 100),
                    LogConfig::default(),
                    0,
                )
                .await;
            if PartitionTable::owner(&TopicPartition::new("events", p + 100), 2) != 1 - owner {
                assert!(matches!(refused, Err(Error::UnknownPartition(_))));
            }
            wrong.close().await.unwrap();
        }
        let mut seen = Vec::new();
        for shard in 0..2 {
            let table = PartitionTable::open(&data, shard, 2, |_| LogConfig::default(), 0)
                .await
                .unwrap();
            seen.extend(
                table
                    .partitions()
                    .iter()
                    .filter(|tp| tp.partition < 16)
                    .map(|tp| tp.partition),
            );
            table.close().await.unwrap();
        }
        seen.sort();
        assert_eq!(seen, (0..16).collect::<Vec<_>>());
    });
}
