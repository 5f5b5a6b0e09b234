"""kafka-python: every topic config Apache Kafka 3.9 defines is described
with its default, accepted when valid and refused when not; those that act
on a single broker take effect: compression.type recompresses what every
codec's producer sends (the calling test then reads the stored codecs),
min.insync.replicas above the one replica refuses acks=all, and
message.timestamp.before/after.max.ms refuse records outside their window,
and cleanup.policy=compact refuses records without a key (INVALID_RECORD).
Usage: topic_configs.py BOOTSTRAP"""
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import (InvalidConfigurationError, InvalidRecordError, InvalidTimestampError,
                          NotEnoughReplicasError)

bootstrap = sys.argv[1]
admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)

LONG_MAX = "9223372036854775807"
# Kafka 3.9's topic configs and defaults; shardlog differs in one place on
# purpose: flush.messages is 1 (every acknowledged write is on disk).
DEFAULTS = {
    "cleanup.policy": "delete", "compression.gzip.level": "-1", "compression.lz4.level": "9",
    "compression.type": "producer", "compression.zstd.level": "3", "delete.retention.ms": "86400000",
    "file.delete.delay.ms": "60000", "flush.messages": "1", "flush.ms": LONG_MAX,
    "follower.replication.throttled.replicas": "", "index.interval.bytes": "4096",
    "leader.replication.throttled.replicas": "", "local.retention.bytes": "-2", "local.retention.ms": "-2",
    "max.compaction.lag.ms": LONG_MAX, "max.message.bytes": "1048588", "message.downconversion.enable": "true",
    "message.format.version": "3.0-IV1", "message.timestamp.after.max.ms": LONG_MAX,
    "message.timestamp.before.max.ms": LONG_MAX, "message.timestamp.difference.max.ms": LONG_MAX,
    "message.timestamp.type": "CreateTime", "min.cleanable.dirty.ratio": "0.5", "min.compaction.lag.ms": "0",
    "min.insync.replicas": "1", "preallocate": "false", "remote.log.copy.disable": "false",
    "remote.log.delete.on.disable": "false", "remote.storage.enable": "false", "retention.bytes": "-1",
    "retention.ms": "604800000", "segment.bytes": "1073741824", "segment.index.bytes": "10485760",
    "segment.jitter.ms": "0", "segment.ms": "604800000", "unclean.leader.election.enable": "false",
}
# A valid value other than the default for each.
CHANGED = {
    "cleanup.policy": "compact,delete", "compression.gzip.level": "9", "compression.lz4.level": "1",
    "compression.type": "lz4", "compression.zstd.level": "19", "delete.retention.ms": "1000",
    "file.delete.delay.ms": "0", "flush.messages": "1000", "flush.ms": "1000",
    "follower.replication.throttled.replicas": "0:0", "index.interval.bytes": "8192",
    "leader.replication.throttled.replicas": "*", "local.retention.bytes": "-1", "local.retention.ms": "1000",
    "max.compaction.lag.ms": "86400000", "max.message.bytes": "2097152", "message.downconversion.enable": "false",
    "message.format.version": "2.8", "message.timestamp.after.max.ms": "3600000",
    "message.timestamp.before.max.ms": "86400000", "message.timestamp.difference.max.ms": "60000",
    "message.timestamp.type": "LogAppendTime", "min.cleanable.dirty.ratio": "0.25", "min.compaction.lag.ms": "10",
    "min.insync.replicas": "1", "preallocate": "true", "remote.log.copy.disable": "true",
    "remote.log.delete.on.disable": "true", "remote.storage.enable": "false", "retention.bytes": "1073741824",
    "retention.ms": "-1", "segment.bytes": "536870912", "segment.index.bytes": "4096",
    "segment.jitter.ms": "1000", "segment.ms": "3600000", "unclean.leader.election.enable": "true",
}
assert set(CHANGED) == set(DEFAULTS)


def describe(topic):
    described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all")
    return described["topic"][topic]


admin.create_topics([NewTopic("plain", 1, 1), NewTopic("every-config", 1, 1, topic_configs=CHANGED)])
plain = describe("plain")
assert set(plain) == set(DEFAULTS), sorted(set(plain) ^ set(DEFAULTS))
for key, value in DEFAULTS.items():
    assert plain[key]["value"] == value, (key, plain[key])
    assert plain[key]["config_source"] == "DEFAULT_CONFIG", (key, plain[key])
every = describe("every-config")
for key, value in CHANGED.items():
    assert every[key]["value"] == value, (key, every[key])
    assert every[key]["config_source"] == "DYNAMIC_TOPIC_CONFIG", (key, every[key])


def synonyms(topic, key):
    wanted = ConfigResource(ConfigResourceType.TOPIC, topic, [key])
    described = admin.describe_configs([wanted], include_synonyms=True, config_filter="all")
    return [(s["name"], s["value"], s["source"]) for s in described["topic"][topic][key]["synonyms"]]


# Each config's synonyms: the topic's value, then its broker default by
# Kafka's broker name; configs with no broker default have none.
assert synonyms("every-config", "delete.retention.ms") == [
    ("delete.retention.ms", "1000", "DYNAMIC_TOPIC_CONFIG"),
    ("log.cleaner.delete.retention.ms", "86400000", "DEFAULT_CONFIG")], synonyms("every-config", "delete.retention.ms")
assert synonyms("every-config", "leader.replication.throttled.replicas") == [
    ("leader.replication.throttled.replicas", "*", "DYNAMIC_TOPIC_CONFIG")]
assert synonyms("plain", "leader.replication.throttled.replicas") == []
assert synonyms("plain", "compression.type") == [("compression.type", "producer", "DEFAULT_CONFIG")]
print(f"described: {len(plain)} topic configs with Kafka's defaults and synonyms, every one settable")

for key, value in [("compression.type", "brotli"), ("compression.zstd.level", "23"),
                   ("min.cleanable.dirty.ratio", "1.5"), ("min.insync.replicas", "0"),
                   ("unclean.leader.election.enable", "maybe"), ("message.format.version", "latest"),
                   ("leader.replication.throttled.replicas", "0-1"), ("remote.storage.enable", "true"),
                   ("segment.jitter.ms", "-1")]:
    try:
        admin.create_topics([NewTopic("refused", 1, 1, topic_configs={key: value})])
        raise SystemExit(f"{key}={value} was accepted")
    except InvalidConfigurationError:
        pass
try:
    admin.create_topics([NewTopic("refused", 1, 1, topic_configs={
        "min.compaction.lag.ms": "2000", "max.compaction.lag.ms": "1000"})])
    raise SystemExit("min.compaction.lag.ms above max.compaction.lag.ms was accepted")
except InvalidConfigurationError:
    pass
print("refused: invalid values and inconsistent compaction lags")

# compression.type: whatever codec the producer sends, the topic's is stored.
targets = ["zstd", "uncompressed", "gzip"]
admin.create_topics([NewTopic(f"recompress-{t}", 1, 1, topic_configs={"compression.type": t}) for t in targets])
for target in targets:
    topic = f"recompress-{target}"
    sent = []
    for codec in [None, "gzip", "snappy", "lz4", "zstd"]:
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type=codec,
                                 enable_idempotence=False, linger_ms=5)
        values = [f"{codec} into {target}: {i} ".encode() * (1 + i % 5) for i in range(200)]
        for value in values:
            producer.send(topic, value=value)
        producer.flush()
        producer.close()
        sent += values
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=10000, group_id=None)
    got = []
    for message in consumer:
        got.append(message.value)
        if len(got) == len(sent):
            break
    consumer.close()
    assert got == sent, f"{topic}: read {len(got)} of {len(sent)}"
    print(f"{topic}: {len(got)} messages from five codecs read back")

# min.insync.replicas=2 on one broker: acks=all is refused, acks=1 is not.
admin.create_topics([NewTopic("two-in-sync", 1, 1, topic_configs={"min.insync.replicas": "2"})])
producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=0, enable_idempotence=False)
try:
    producer.send("two-in-sync", b"needs two").get(timeout=30)
    raise SystemExit("acks=all was accepted with min.insync.replicas=2 on one broker")
except NotEnoughReplicasError:
    pass
producer.close()
producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, enable_idempotence=False)
producer.send("two-in-sync", b"one is enough").get(timeout=30)
producer.close()
print("min.insync.replicas: acks=all refused, acks=1 written")

# Timestamps: a day back is outside a one-minute window, and so is a day ahead.
admin.create_topics([NewTopic("recent-only", 1, 1, topic_configs={
    "message.timestamp.before.max.ms": "60000", "message.timestamp.after.max.ms": "60000"})])
producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=0, enable_idempotence=False)
now_ms = int(time.time() * 1000)
producer.send("recent-only", b"now", timestamp_ms=now_ms).get(timeout=30)
for skew in [-86_400_000, 86_400_000]:
    try:
        producer.send("recent-only", b"skewed", timestamp_ms=now_ms + skew).get(timeout=30)
        raise SystemExit(f"a record {skew} ms off was accepted")
    except InvalidTimestampError:
        pass
producer.close()
print("message.timestamp.*.max.ms: records outside the window refused")

# cleanup.policy=compact: every record needs a key (the cleaner keeps the
# latest per key), in every codec; a tombstone (no value) is a record too.
admin.create_topics([NewTopic("compacted", 1, 1, topic_configs={"cleanup.policy": "compact"})])
for codec in [None, "gzip", "lz4"]:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=0, enable_idempotence=False,
                             compression_type=codec)
    producer.send("compacted", key=b"k", value=f"{codec}".encode()).get(timeout=30)
    producer.send("compacted", key=b"k", value=None).get(timeout=30)
    try:
        producer.send("compacted", value=b"no key").get(timeout=30)
        raise SystemExit(f"{codec}: a record without a key was accepted on a compacted topic")
    except InvalidRecordError:
        pass
    producer.close()
print("cleanup.policy=compact: keyed records and tombstones written, keyless refused")
print("topic configs: ok")
