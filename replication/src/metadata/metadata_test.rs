use proptest::prelude::*;

use super::*;

fn id(n: u8) -> TopicId {
    TopicId([n; 16])
}

fn create(name: &str, partitions: i32) -> Command {
    Command::CreateTopic {
        name: name.into(),
        partitions,
        replication_factor: 1,
        configs: BTreeMap::new(),
    }
}

/// Decides and applies, as the single writer does.
fn run(
    state: &mut ClusterMetadata,
    command: Command,
    topic_id: TopicId,
) -> Result<MetadataRecord, MetadataError> {
    let record = state.decide(command, topic_id)?;
    state.apply(record.clone())?;
    Ok(record)
}

#[test]
fn topics_are_created_grown_configured_and_deleted() {
    let mut state = ClusterMetadata::default();
    run(&mut state, create("orders", 3), id(1)).unwrap();
    assert_eq!(
        run(&mut state, create("orders", 3), id(2)),
        Err(MetadataError::TopicExists("orders".into()))
    );
    run(
        &mut state,
        Command::CreatePartitions {
            name: "orders".into(),
            total: 5,
        },
        TopicId::ZERO,
    )
    .unwrap();
    let shrink = run(
        &mut state,
        Command::CreatePartitions {
            name: "orders".into(),
            total: 4,
        },
        TopicId::ZERO,
    );
    assert!(matches!(
        shrink,
        Err(MetadataError::InvalidPartitions { current: 5, .. })
    ));
    let set = BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]);
    let alter = Command::AlterConfigs {
        topic: Some("orders".into()),
        set,
        delete: vec![],
    };
    run(&mut state, alter, TopicId::ZERO).unwrap();
    let topic = state.topic("orders").unwrap();
    assert_eq!((topic.partitions, topic.topic_id), (5, id(1)));
    assert_eq!(
        topic.configs.get("retention.ms").map(String::as_str),
        Some("1000")
    );
    assert_eq!(
        state.topic_by_id(id(1)).map(|t| t.name.as_str()),
        Some("orders")
    );
    run(
        &mut state,
        Command::DeleteTopic {
            name: "orders".into(),
        },
        TopicId::ZERO,
    )
    .unwrap();
    assert!(state.topic("orders").is_none());
    assert_eq!(state.applied(), 4);
    let gone = run(
        &mut state,
        Command::DeleteTopic {
            name: "orders".into(),
        },
        TopicId::ZERO,
    );
    assert_eq!(gone, Err(MetadataError::UnknownTopic("orders".into())));
}

#[test]
fn broker_defaults_are_altered_with_no_topic() {
    let mut state = ClusterMetadata::default();
    let set = BTreeMap::from([("segment.bytes".to_string(), "1048576".to_string())]);
    run(
        &mut state,
        Command::AlterConfigs {
            topic: None,
            set,
            delete: vec![],
        },
        TopicId::ZERO,
    )
    .unwrap();
    assert_eq!(state.broker_configs().len(), 1);
    let delete = Command::AlterConfigs {
        topic: None,
        set: BTreeMap::new(),
        delete: vec!["segment.bytes".into()],
    };
    run(&mut state, delete, TopicId::ZERO).unwrap();
    assert!(state.broker_configs().is_empty());
}

#[test]
fn bad_names_partition_counts_and_ids_are_refused() {
    let mut state = ClusterMetadata::default();
    for name in ["", ".", "..", "has space", "slash/name", &"x".repeat(250)] {
        assert!(
            matches!(
                run(&mut state, create(name, 1), id(1)),
                Err(MetadataError::InvalidTopicName { .. })
            ),
            "{name:?}"
        );
    }
    assert!(matches!(
        run(&mut state, create("t", 0), id(1)),
        Err(MetadataError::InvalidPartitions { .. })
    ));
    assert_eq!(
        run(&mut state, create("t", 1), TopicId::ZERO),
        Err(MetadataError::TopicIdInUse)
    );
    run(&mut state, create("t", 1), id(7)).unwrap();
    assert_eq!(
        run(&mut state, create("u", 1), id(7)),
        Err(MetadataError::TopicIdInUse)
    );
    validate_topic_name("__consumer_offsets").unwrap();
    validate_topic_name(&"x".repeat(249)).unwrap();
}

#[test]
fn replaying_the_records_rebuilds_the_same_state() {
    let mut state = ClusterMetadata::default();
    let mut log = Vec::new();
    let commands = [
        (create("a", 2), id(1)),
        (create("b", 1), id(2)),
        (
            Command::CreatePartitions {
                name: "a".into(),
                total: 6,
            },
            TopicId::ZERO,
        ),
        (Command::DeleteTopic { name: "b".into() }, TopicId::ZERO),
        (create("b", 4), id(3)),
    ];
    for (command, topic_id) in commands {
        log.push(run(&mut state, command, topic_id).unwrap().encode());
    }
    let mut replayed = ClusterMetadata::default();
    for bytes in &log {
        replayed
            .apply(MetadataRecord::decode(bytes).unwrap())
            .unwrap();
    }
    assert_eq!(replayed, state);
    assert_eq!(replayed.topic("b").unwrap().topic_id, id(3));
}

#[test]
fn records_from_another_version_or_damaged_are_errors() {
    let bytes = MetadataRecord::PartitionsCreated {
        name: "t".into(),
        total: 3,
    }
    .encode();
    assert!(matches!(
        MetadataRecord::decode(&[]),
        Err(DecodeError::Empty)
    ));
    let mut other = bytes.clone();
    other[0] = 9;
    assert!(matches!(
        MetadataRecord::decode(&other),
        Err(DecodeError::Version(9))
    ));
    assert!(MetadataRecord::decode(&bytes[..bytes.len() / 2]).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig {
        rng_seed: proptest::test_runner::RngSeed::Fixed(2026),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut framed = vec![1u8];
        framed.extend_from_slice(&bytes);
        let _ = MetadataRecord::decode(&framed);
    }

    #[test]
    fn records_round_trip(name in "[a-z._-]{1,40}", total in 1i32..1000, key in "[a-z.]{1,20}", value in ".{0,30}") {
        let record = MetadataRecord::ConfigsAltered {
            topic: Some(name.clone()),
            set: BTreeMap::from([(key.clone(), value)]),
            delete: vec![key],
        };
        prop_assert_eq!(MetadataRecord::decode(&record.encode()).unwrap(), record);
        let record = MetadataRecord::TopicCreated { name, topic_id: TopicId([9; 16]), partitions: total, configs: BTreeMap::new() };
        prop_assert_eq!(MetadataRecord::decode(&record.encode()).unwrap(), record);
    }
}

#[test]
fn producer_id_blocks_follow_each_other_and_replay_to_the_same_next() {
    let mut state = ClusterMetadata::default();
    let mut records = Vec::new();
    for (count, first) in [(1000, 0), (1000, 1000), (5, 2000)] {
        let record = run(&mut state, Command::AllocateProducerIds { count }, id(0)).unwrap();
        assert_eq!(
            record,
            MetadataRecord::ProducerIdsAllocated { first, count }
        );
        let decoded = MetadataRecord::decode(&record.encode()).unwrap();
        records.push(decoded);
    }
    assert_eq!(state.next_producer_id(), 2005);
    let mut replayed = ClusterMetadata::default();
    for record in records.iter().cloned() {
        replayed.apply(record).unwrap();
    }
    assert_eq!(replayed, state);
    // A block behind the current next would hand ids out twice.
    assert_eq!(
        replayed.apply(records[0].clone()),
        Err(MetadataError::ProducerIdsExhausted)
    );
    for count in [0, -1, i64::MAX] {
        assert_eq!(
            state.decide(Command::AllocateProducerIds { count }, id(0)),
            Err(MetadataError::ProducerIdsExhausted),
            "{count}"
        );
    }
}

/// Records as the first single-node builds wrote them (version 1, bytes
/// captured from that code): they decode unchanged, and encode the same.
#[test]
fn version_1_records_written_by_older_builds_still_decode() {
    let created: &[u8] = &[
        1, 114, 101, 116, 101, 110, 116, 105, 111, 110, 46, 109, 115, 0, 0, 0, 0, 140, 0, 0, 0,
        240, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 49, 48, 48, 48, 255, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 111, 114, 100, 101, 114, 115, 255, 255, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
        7, 7, 7, 3, 0, 0, 0, 132, 255, 255, 255, 1, 0, 0, 0,
    ];
    let expected = MetadataRecord::TopicCreated {
        name: "orders".into(),
        topic_id: id(7),
        partitions: 3,
        configs: BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]),
    };
    assert_eq!(expected.encode(), created);
    assert_eq!(MetadataRecord::decode(created).unwrap(), expected);
    let allocated: &[u8] = &[
        1, 4, 0, 0, 0, 0, 0, 0, 0, 232, 3, 0, 0, 0, 0, 0, 0, 244, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let expected = MetadataRecord::ProducerIdsAllocated {
        first: 1000,
        count: 500,
    };
    assert_eq!(MetadataRecord::decode(allocated).unwrap(), expected);
    assert_eq!(expected.encode(), allocated);
}

#[test]
fn brokers_register_unfence_and_fence_by_epoch() {
    let mut state = ClusterMetadata::default();
    run(&mut state, create("before", 1), id(1)).unwrap();
    let endpoints = vec![Endpoint {
        name: "PLAINTEXT".into(),
        host: "127.0.0.1".into(),
        port: 9092,
    }];
    let register = MetadataRecord::BrokerRegistered {
        broker_id: 2,
        incarnation: 77,
        endpoints: endpoints.clone(),
    };
    state.apply(register.clone()).unwrap();
    let broker = state.broker(2).unwrap().clone();
    assert_eq!(broker.broker_epoch, 1, "the registration's log position");
    assert!(broker.fenced, "fenced until it has caught up");
    let stale = MetadataRecord::BrokerUnfenced {
        broker_id: 2,
        broker_epoch: 0,
    };
    assert_eq!(
        state.apply(stale),
        Err(MetadataError::UnknownBroker {
            broker_id: 2,
            broker_epoch: 0
        })
    );
    state
        .apply(MetadataRecord::BrokerUnfenced {
            broker_id: 2,
            broker_epoch: 1,
        })
        .unwrap();
    assert!(!state.broker(2).unwrap().fenced);
    // A restart registers again: a new epoch, fenced again.
    state.apply(register).unwrap();
    assert_eq!(state.broker(2).unwrap().broker_epoch, 3);
    assert!(state.broker(2).unwrap().fenced);
    assert_eq!(state.broker(2).unwrap().endpoints, endpoints);
}

#[test]
fn partition_records_bump_the_partition_epoch_and_go_with_their_topic() {
    let mut state = ClusterMetadata::default();
    run(&mut state, create("t", 2), id(1)).unwrap();
    let change = |partition, leader, leader_epoch| MetadataRecord::PartitionChanged {
        topic_id: id(1),
        partition,
        replicas: vec![1, 2, 3],
        isr: vec![1, 2, 3],
        leader,
        leader_epoch,
        adding: Vec::new(),
        removing: Vec::new(),
    };
    state.apply(change(0, 1, 0)).unwrap();
    state.apply(change(0, 2, 1)).unwrap();
    let p0 = state.partition(id(1), 0).unwrap();
    assert_eq!((p0.leader, p0.leader_epoch, p0.partition_epoch), (2, 1, 1));
    assert_eq!(
        state.apply(change(2, 1, 0)),
        Err(MetadataError::UnknownPartition {
            topic_id: id(1),
            partition: 2
        })
    );
    run(&mut state, Command::DeleteTopic { name: "t".into() }, id(9)).unwrap();
    assert_eq!(state.partitions().count(), 0);
}

proptest! {
    /// Every record, of any version, decodes to itself.
    #[test]
    fn cluster_records_round_trip(
        broker_id in any::<i32>(),
        epoch in any::<u64>(),
        replicas in proptest::collection::vec(any::<i32>(), 0..8),
        adding in proptest::collection::vec(any::<i32>(), 0..3),
        removing in proptest::collection::vec(any::<i32>(), 0..3),
        host in "[a-z0-9.]{0,20}",
        port in any::<u16>(),
    ) {
        let records = [
            MetadataRecord::BrokerRegistered {
                broker_id,
                incarnation: epoch,
                endpoints: vec![Endpoint { name: "PLAINTEXT".into(), host, port }],
            },
            MetadataRecord::BrokerUnfenced { broker_id, broker_epoch: epoch },
            MetadataRecord::BrokerFenced { broker_id, broker_epoch: epoch },
            MetadataRecord::PartitionChanged {
                topic_id: id(3),
                partition: broker_id,
                replicas: replicas.clone(),
                isr: replicas.clone(),
                leader: broker_id,
                leader_epoch: broker_id,
                adding: Vec::new(),
                removing: Vec::new(),
            },
            // A reassignment in progress (version 3).
            MetadataRecord::PartitionChanged {
                topic_id: id(3),
                partition: broker_id,
                replicas: replicas.clone(),
                isr: replicas,
                leader: broker_id,
                leader_epoch: broker_id,
                adding,
                removing,
            },
        ];
        for record in records {
            prop_assert_eq!(MetadataRecord::decode(&record.encode()).unwrap(), record);
        }
    }
}

/// A state with one of everything a snapshot carries.
fn busy_state() -> ClusterMetadata {
    let mut state = ClusterMetadata::default();
    run(&mut state, create("orders", 2), id(1)).unwrap();
    run(&mut state, create("gone", 1), id(2)).unwrap();
    run(
        &mut state,
        Command::DeleteTopic {
            name: "gone".into(),
        },
        id(9),
    )
    .unwrap();
    let alter = Command::AlterConfigs {
        topic: None,
        set: BTreeMap::from([("retention.ms".to_string(), "60000".to_string())]),
        delete: Vec::new(),
    };
    run(&mut state, alter, TopicId::ZERO).unwrap();
    run(
        &mut state,
        Command::AllocateProducerIds { count: 1000 },
        TopicId::ZERO,
    )
    .unwrap();
    for broker_id in [1, 2] {
        state
            .apply(MetadataRecord::BrokerRegistered {
                broker_id,
                incarnation: 5,
                endpoints: vec![Endpoint {
                    name: "PLAINTEXT".into(),
                    host: "127.0.0.1".into(),
                    port: 9090 + u16::try_from(broker_id).unwrap(),
                }],
            })
            .unwrap();
    }
    let epoch = state.broker(1).unwrap().broker_epoch;
    state
        .apply(MetadataRecord::BrokerUnfenced {
            broker_id: 1,
            broker_epoch: epoch,
        })
        .unwrap();
    let credential = StoredScram {
        salt: b"salt".to_vec(),
        iterations: 4096,
        stored_key: vec![1; 32],
        server_key: vec![2; 32],
    };
    for (user, mechanism) in [
        ("alice", SCRAM_SHA_256),
        ("alice", SCRAM_SHA_512),
        ("bob", 1),
    ] {
        let upsert = Command::UpsertScramCredential {
            user: user.into(),
            mechanism,
            credential: credential.clone(),
        };
        run(&mut state, upsert, TopicId::ZERO).unwrap();
    }
    let acl = AclBinding {
        resource_type: acl::resource::TOPIC,
        resource_name: "ord".into(),
        pattern_type: acl::pattern::PREFIXED,
        principal: "User:alice".into(),
        host: "*".into(),
        operation: acl::operation::READ,
        permission: acl::permission::ALLOW,
    };
    let created = run(&mut state, Command::CreateAcl(acl.clone()), TopicId::ZERO).unwrap();
    assert_eq!(MetadataRecord::decode(&created.encode()).unwrap(), created);
    let deny = AclBinding {
        permission: acl::permission::DENY,
        ..acl
    };
    run(&mut state, Command::CreateAcl(deny.clone()), TopicId::ZERO).unwrap();
    let deleted = run(&mut state, Command::DeleteAcl(deny.clone()), TopicId::ZERO).unwrap();
    assert_eq!(MetadataRecord::decode(&deleted.encode()).unwrap(), deleted);
    assert!(matches!(
        run(&mut state, Command::DeleteAcl(deny), TopicId::ZERO),
        Err(MetadataError::UnknownAcl)
    ));
    assert_eq!(state.acls().count(), 1);
    for (partition, adding) in [(0, Vec::new()), (1, vec![2])] {
        state
            .apply(MetadataRecord::PartitionChanged {
                topic_id: id(1),
                partition,
                replicas: vec![1, 2],
                isr: vec![1],
                leader: 1,
                leader_epoch: 3,
                adding,
                removing: Vec::new(),
            })
            .unwrap();
    }
    state
}

#[test]
fn scram_credentials_are_set_replaced_and_deleted_per_mechanism() {
    let mut state = ClusterMetadata::default();
    let credential = |iterations| StoredScram {
        salt: b"pepper".to_vec(),
        iterations,
        stored_key: vec![7; 64],
        server_key: vec![8; 64],
    };
    let upsert = |user: &str, mechanism, iterations| Command::UpsertScramCredential {
        user: user.into(),
        mechanism,
        credential: credential(iterations),
    };
    run(
        &mut state,
        upsert("alice", SCRAM_SHA_512, 4096),
        TopicId::ZERO,
    )
    .unwrap();
    run(
        &mut state,
        upsert("alice", SCRAM_SHA_512, 8192),
        TopicId::ZERO,
    )
    .unwrap();
    assert_eq!(
        state.scram_credential("alice", SCRAM_SHA_512),
        Some(&credential(8192))
    );
    assert_eq!(state.scram_credential("alice", SCRAM_SHA_256), None);
    for refused in [upsert("", SCRAM_SHA_256, 4096), upsert("bob", 3, 4096)] {
        assert!(matches!(
            run(&mut state, refused, TopicId::ZERO),
            Err(MetadataError::UnacceptableCredential(_))
        ));
    }
    let delete = |mechanism| Command::DeleteScramCredential {
        user: "alice".into(),
        mechanism,
    };
    assert!(matches!(
        run(&mut state, delete(SCRAM_SHA_256), TopicId::ZERO),
        Err(MetadataError::UnknownScramCredential { .. })
    ));
    run(&mut state, delete(SCRAM_SHA_512), TopicId::ZERO).unwrap();
    assert_eq!(state.scram_credentials().count(), 0);
    // The records replay to the same state, and round-trip.
    let record = MetadataRecord::ScramCredentialSet {
        user: "carol".into(),
        mechanism: SCRAM_SHA_256,
        credential: credential(4096),
    };
    assert_eq!(MetadataRecord::decode(&record.encode()).unwrap(), record);
}

#[test]
fn a_snapshot_holds_the_whole_state_and_replay_goes_on_from_it() {
    let state = busy_state();
    let mut restored = ClusterMetadata::decode_snapshot(&state.encode_snapshot()).unwrap();
    assert_eq!(restored, state);
    // Records after the snapshot apply to it as to the state it was taken
    // from: the next registration gets the same broker epoch.
    let mut original = state;
    let register = MetadataRecord::BrokerRegistered {
        broker_id: 3,
        incarnation: 1,
        endpoints: Vec::new(),
    };
    original.apply(register.clone()).unwrap();
    restored.apply(register).unwrap();
    assert_eq!(restored, original);
    assert_eq!(
        ClusterMetadata::decode_snapshot(&ClusterMetadata::default().encode_snapshot()).unwrap(),
        ClusterMetadata::default()
    );
}

#[test]
fn damaged_or_foreign_snapshots_are_errors() {
    let bytes = busy_state().encode_snapshot();
    assert!(matches!(
        ClusterMetadata::decode_snapshot(&[]),
        Err(DecodeError::Empty)
    ));
    let mut foreign = bytes.clone();
    foreign[0] = 9;
    assert!(matches!(
        ClusterMetadata::decode_snapshot(&foreign),
        Err(DecodeError::Version(9))
    ));
    for cut in [1, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            ClusterMetadata::decode_snapshot(&bytes[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    // Well-formed archives of states no log builds.
    let mut orphan = busy_state();
    orphan.topics.clear();
    assert!(matches!(
        ClusterMetadata::decode_snapshot(&orphan.encode_snapshot()),
        Err(DecodeError::Inconsistent(_))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig {
        rng_seed: proptest::test_runner::RngSeed::Fixed(2027),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Damaged snapshots (random bytes flipped) are errors or states,
    /// never panics.
    #[test]
    fn damaged_snapshots_never_panic_the_decoder(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        tail in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = busy_state().encode_snapshot();
        for (at, value) in flips {
            let at = at.index(bytes.len() - 1) + 1;
            bytes[at] ^= value;
        }
        let _ = ClusterMetadata::decode_snapshot(&bytes);
        let mut framed = vec![1u8];
        framed.extend_from_slice(&tail);
        let _ = ClusterMetadata::decode_snapshot(&framed);
    }
}
