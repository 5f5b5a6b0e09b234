//! The cluster metadata kept in a real partition log: changes survive a
//! clean close and a crash (the log leaked, never closed).

mod common;

use std::collections::BTreeMap;

use common::run;
use engine::{Log, LogConfig};
use replication::metadata::{Command, MetadataStore, TopicId};

#[test]
fn metadata_changes_survive_reopen_and_crash() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("meta");
        let log = Log::open(&dir, LogConfig::default(), 0).await.unwrap();
        let mut store = MetadataStore::open(log).await.unwrap();
        for (i, name) in ["orders", "payments", "audit"].into_iter().enumerate() {
            let configs =
                BTreeMap::from([("retention.ms".to_string(), format!("{}", 1000 * (i + 1)))]);
            let create = Command::CreateTopic {
                replication_factor: 1,
                name: name.into(),
                partitions: 3,
                configs,
            };
            store
                .execute(create, TopicId([i as u8 + 1; 16]))
                .await
                .unwrap();
        }
        store
            .execute(
                Command::DeleteTopic {
                    name: "audit".into(),
                },
                TopicId::ZERO,
            )
            .await
            .unwrap();
        let expected = store.state().clone();
        store.into_log().close().await.unwrap();

        let log = Log::open(&dir, LogConfig::default(), 0).await.unwrap();
        let mut store = MetadataStore::open(log).await.unwrap();
        assert_eq!(store.state(), &expected);
        store
            .execute(
                Command::CreatePartitions {
                    name: "orders".into(),
                    total: 8,
                },
                TopicId::ZERO,
            )
            .await
            .unwrap();
        let expected = store.state().clone();
        std::mem::forget(store); // crash: never closed

        let log = Log::open(&dir, LogConfig::default(), 0).await.unwrap();
        let store = MetadataStore::open(log).await.unwrap();
        assert_eq!(store.state(), &expected);
        assert_eq!(store.state().topic("orders").unwrap().partitions, 8);
        assert!(store.state().topic("audit").is_none());
        store.into_log().close().await.unwrap();
    });
}
