use super::*;

#[test]
fn every_key_round_trips_through_set_and_get() {
    let cases = [
        ("cleanup.policy", "compact,delete"),
        ("compression.gzip.level", "9"),
        ("compression.lz4.level", "17"),
        ("compression.type", "zstd"),
        ("compression.zstd.level", "-5"),
        ("delete.retention.ms", "1000"),
        ("file.delete.delay.ms", "0"),
        ("flush.ms", "1000"),
        ("flush.messages", "500"),
        ("follower.replication.throttled.replicas", "0:1,1:1"),
        ("index.interval.bytes", "8192"),
        ("leader.replication.throttled.replicas", "*"),
        ("local.retention.bytes", "-1"),
        ("local.retention.ms", "3600000"),
        ("max.compaction.lag.ms", "86400000"),
        ("max.message.bytes", "2097152"),
        ("message.downconversion.enable", "false"),
        ("message.format.version", "2.8"),
        ("message.timestamp.after.max.ms", "3600000"),
        ("message.timestamp.before.max.ms", "86400000"),
        ("message.timestamp.difference.max.ms", "60000"),
        ("message.timestamp.type", "LogAppendTime"),
        ("min.cleanable.dirty.ratio", "0.25"),
        ("min.compaction.lag.ms", "5000"),
        ("min.insync.replicas", "2"),
        ("preallocate", "true"),
        ("remote.log.copy.disable", "true"),
        ("remote.log.delete.on.disable", "true"),
        ("remote.storage.enable", "false"),
        ("retention.bytes", "1073741824"),
        ("retention.ms", "-1"),
        ("segment.bytes", "536870912"),
        ("segment.index.bytes", "4096"),
        ("segment.jitter.ms", "60000"),
        ("segment.ms", "3600000"),
        ("unclean.leader.election.enable", "true"),
    ];
    let mut names: Vec<&str> = cases.iter().map(|c| c.0).collect();
    names.sort_unstable();
    let all: Vec<&str> = TOPIC_CONFIGS.iter().map(|k| k.name).collect();
    assert_eq!(
        names, all,
        "every Kafka 3.9 topic config is covered, sorted"
    );
    let mut config = LogConfig::default();
    for (key, value) in cases {
        config.set(key, value).unwrap();
    }
    for (key, value) in cases {
        assert_eq!(config.get(key).unwrap(), value, "{key}");
    }
    assert_eq!(
        config.flush,
        FlushPolicy::Interval {
            ms: Some(1000),
            messages: Some(500)
        }
    );
    assert_eq!(config.retention_ms, None);
    assert_eq!(
        config.target_compression(),
        Some((Compression::Zstd, Some(-5)))
    );
    assert_eq!(config.min_insync_replicas, 2);
}

#[test]
fn defaults_read_as_kafka_prints_them() {
    let config = LogConfig::default();
    let kafka_defaults = [
        ("cleanup.policy", "delete"),
        ("compression.gzip.level", "-1"),
        ("compression.lz4.level", "9"),
        ("compression.type", "producer"),
        ("compression.zstd.level", "3"),
        ("delete.retention.ms", "86400000"),
        ("file.delete.delay.ms", "60000"),
        ("follower.replication.throttled.replicas", ""),
        ("index.interval.bytes", "4096"),
        ("local.retention.bytes", "-2"),
        ("max.compaction.lag.ms", "9223372036854775807"),
        ("max.message.bytes", "1048588"),
        ("message.downconversion.enable", "true"),
        ("message.format.version", "3.0-IV1"),
        ("message.timestamp.after.max.ms", "9223372036854775807"),
        ("message.timestamp.type", "CreateTime"),
        ("min.cleanable.dirty.ratio", "0.5"),
        ("min.compaction.lag.ms", "0"),
        ("min.insync.replicas", "1"),
        ("preallocate", "false"),
        ("remote.storage.enable", "false"),
        ("retention.bytes", "-1"),
        ("retention.ms", "604800000"),
        ("segment.bytes", "1073741824"),
        ("segment.index.bytes", "10485760"),
        ("segment.jitter.ms", "0"),
        ("segment.ms", "604800000"),
        ("unclean.leader.election.enable", "false"),
    ];
    for (key, value) in kafka_defaults {
        assert_eq!(config.get(key).unwrap(), value, "{key}");
    }
    assert_eq!(
        config.get("flush.messages").unwrap(),
        "1",
        "durable by default"
    );
    assert_eq!(config.target_compression(), None);
    assert_eq!(config.timestamp_window(), None);
}

#[test]
fn unknown_keys_and_bad_values_are_refused() {
    let mut config = LogConfig::default();
    assert_eq!(
        config.set("retention.hours", "1"),
        Err(ConfigError::UnknownKey("retention.hours".into()))
    );
    for (key, value) in [
        ("retention.ms", "soon"),
        ("retention.ms", "-2"),
        ("segment.bytes", "1"),
        ("segment.bytes", "4294967296"),
        ("cleanup.policy", "shred"),
        ("cleanup.policy", "compact,shred"),
        ("message.timestamp.type", "Now"),
        ("flush.messages", "0"),
        ("compression.type", "brotli"),
        ("compression.type", "ZSTD"),
        ("compression.gzip.level", "0"),
        ("compression.gzip.level", "10"),
        ("compression.lz4.level", "18"),
        ("compression.zstd.level", "23"),
        ("min.cleanable.dirty.ratio", "1.5"),
        ("min.cleanable.dirty.ratio", "half"),
        ("min.insync.replicas", "0"),
        ("min.insync.replicas", "2147483648"),
        ("unclean.leader.election.enable", "yes"),
        ("preallocate", "1"),
        ("message.format.version", "4.0"),
        ("message.format.version", "latest"),
        ("leader.replication.throttled.replicas", "0-1"),
        ("leader.replication.throttled.replicas", "*,0:1"),
        ("local.retention.ms", "-3"),
        ("max.compaction.lag.ms", "0"),
        ("remote.storage.enable", "true"),
    ] {
        assert!(
            matches!(
                config.set(key, value),
                Err(ConfigError::InvalidValue { .. })
            ),
            "{key}={value}"
        );
    }
    assert_eq!(
        config,
        LogConfig::default(),
        "refused values change nothing"
    );
}

#[test]
fn values_are_read_as_java_reads_them() {
    let mut config = LogConfig::default();
    config.set("preallocate", "TRUE").unwrap();
    assert_eq!(config.get("preallocate").unwrap(), "true");
    config.set("min.cleanable.dirty.ratio", "1").unwrap();
    assert_eq!(config.get("min.cleanable.dirty.ratio").unwrap(), "1.0");
    config.set("min.cleanable.dirty.ratio", "0.0001").unwrap();
    assert_eq!(config.get("min.cleanable.dirty.ratio").unwrap(), "1.0E-4");
    config.set("cleanup.policy", " delete , compact ").unwrap();
    assert_eq!(config.get("cleanup.policy").unwrap(), "compact,delete");
    // Kafka 3.x accepts an empty list: neither deleted nor compacted.
    config.set("cleanup.policy", "").unwrap();
    assert_eq!(
        config.cleanup,
        CleanupPolicy {
            delete: false,
            compact: false
        }
    );
    config.set("message.format.version", "0.10.2-IV0").unwrap();
    config.set("message.format.version", "3.0-IV1").unwrap();
    config.set("compression.gzip.level", "-1").unwrap();
}

#[test]
fn flush_messages_one_or_never_means_durable_per_append() {
    let mut config = LogConfig::default();
    config.set("flush.ms", "100").unwrap();
    assert_eq!(
        config.flush,
        FlushPolicy::Interval {
            ms: Some(100),
            messages: None
        }
    );
    config.set("flush.messages", "1").unwrap();
    assert_eq!(config.flush, FlushPolicy::EveryAppend);
    config.set("flush.ms", "9223372036854775807").unwrap();
    assert_eq!(config.flush, FlushPolicy::EveryAppend);
}

#[test]
fn the_timestamp_window_falls_back_to_the_deprecated_difference() {
    let mut config = LogConfig::default();
    config
        .set("message.timestamp.difference.max.ms", "1000")
        .unwrap();
    assert_eq!(config.timestamp_window(), Some((1000, 1000)));
    config.set("message.timestamp.after.max.ms", "50").unwrap();
    assert_eq!(config.timestamp_window(), Some((1000, 50)));
    config
        .set("message.timestamp.type", "LogAppendTime")
        .unwrap();
    assert_eq!(
        config.timestamp_window(),
        None,
        "the broker's clock is used"
    );
}

#[test]
fn compaction_lags_must_be_ordered() {
    let mut config = LogConfig::default();
    config.set("max.compaction.lag.ms", "1000").unwrap();
    config.set("min.compaction.lag.ms", "2000").unwrap();
    assert!(config.check_consistent().is_err());
    config.set("min.compaction.lag.ms", "1000").unwrap();
    assert!(config.check_consistent().is_ok());
}

#[test]
fn segment_jitter_shortens_each_segment_by_its_own_share() {
    let mut config = LogConfig::default();
    config.set("segment.ms", "100000").unwrap();
    assert_eq!(
        config.segment_max_age_ms(0, 0),
        100_000,
        "no jitter by default"
    );
    config.set("segment.jitter.ms", "10000").unwrap();
    let ages: Vec<u64> = (0..50)
        .map(|base| config.segment_max_age_ms(base, 7))
        .collect();
    assert!(
        ages.iter().all(|a| (90_001..=100_000).contains(a)),
        "{ages:?}"
    );
    assert!(
        ages.iter().any(|a| *a != ages[0]),
        "segments differ: {ages:?}"
    );
    assert_eq!(
        config.segment_max_age_ms(3, 7),
        config.segment_max_age_ms(3, 7)
    );
    config.set("cleanup.policy", "compact").unwrap();
    config.set("max.compaction.lag.ms", "5000").unwrap();
    assert!(config.segment_max_age_ms(0, 0) <= 5000);
}

#[test]
fn every_broker_name_maps_to_one_topic_config() {
    for key in TOPIC_CONFIGS {
        if let Some(broker) = key.broker_name {
            assert_eq!(topic_config_by_broker_name(broker).unwrap().name, key.name);
        }
        assert_eq!(topic_config(key.name).unwrap().name, key.name);
    }
}
