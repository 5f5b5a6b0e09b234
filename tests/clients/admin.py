"""kafka-python (an independent, pure-Python Kafka client) against shardlog:
topic administration. Usage: admin.py BOOTSTRAP create|check [BROKERS]
(BROKERS: a cluster of that many brokers, ids 0.., partitions spread over
them with one replica each, and one topic with a replica on every broker;
without it, one broker, id 0)"""
import sys

from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic
from kafka.errors import (InvalidConfigurationError, InvalidPartitionsError, InvalidReplicationAssignmentError,
                          InvalidReplicationFactorError, NoReassignmentInProgressError, TopicAlreadyExistsError,
                          UnknownTopicOrPartitionError)

bootstrap, phase = sys.argv[1], sys.argv[2]
brokers = int(sys.argv[3]) if len(sys.argv) > 3 else 1
admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)

if phase == "create":
    admin.create_topics([
        NewTopic("orders", num_partitions=8, replication_factor=1, topic_configs={"retention.ms": "3600000"}),
        NewTopic("events.v2", num_partitions=3, replication_factor=1),
    ])
    if brokers > 1:
        admin.create_topics([NewTopic("everywhere", num_partitions=2, replication_factor=brokers)])
        # Replicas placed by hand, then grown by hand; a broker that does not
        # exist, a list naming one twice, or lists of unequal length are refused.
        admin.create_topics([NewTopic("placed", replica_assignments={0: [1, 0], 1: [0, 1], 2: [1, 0]})])
        admin.create_partitions({"placed": NewPartitions(total_count=4, new_assignments=[[0, 1]])})
        for bad in [{0: [0, 7]}, {0: [1, 1]}, {0: [0, 1], 1: [1]}]:
            try:
                admin.create_topics([NewTopic("misplaced", replica_assignments=bad)])
                raise SystemExit(f"expected InvalidReplicationAssignmentError for {bad}")
            except InvalidReplicationAssignmentError:
                pass
    for bad, error in [
        (NewTopic("orders", num_partitions=1, replication_factor=1), TopicAlreadyExistsError),
        (NewTopic("bad-config", num_partitions=1, replication_factor=1, topic_configs={"no.such.key": "1"}), InvalidConfigurationError),
        (NewTopic("too-many-replicas", num_partitions=1, replication_factor=brokers + 1),
         InvalidReplicationFactorError),
    ]:
        try:
            admin.create_topics([bad])
            raise SystemExit(f"expected {error.__name__} for {bad.name}")
        except error:
            pass
    # validate_only checks without creating.
    admin.create_topics([NewTopic("dry-run", num_partitions=2, replication_factor=1)], validate_only=True)
    # Grow a topic; shrinking is refused.
    admin.create_topics([NewTopic("grows", num_partitions=2, replication_factor=1)])
    admin.create_partitions({"grows": NewPartitions(total_count=6)})
    try:
        admin.create_partitions({"grows": NewPartitions(total_count=3)})
        raise SystemExit("expected InvalidPartitionsError")
    except InvalidPartitionsError:
        pass
    # Configs: alter a topic and the broker defaults (kafka-python refuses
    # unknown keys itself; the broker's INVALID_CONFIG is checked above).
    admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "orders", configs={"segment.bytes": "1048576"})])
    admin.alter_configs([ConfigResource(ConfigResourceType.BROKER, "0", configs={"log.retention.bytes": "1073741824"})])
    # Delete a topic; deleting it again is UNKNOWN_TOPIC_OR_PARTITION.
    admin.create_topics([NewTopic("doomed", num_partitions=3, replication_factor=1)])
    admin.delete_topics(["doomed"])
    try:
        admin.delete_topics(["doomed"])
        raise SystemExit("expected UnknownTopicOrPartitionError")
    except UnknownTopicOrPartitionError:
        pass

topics = set(admin.list_topics())
assert {"orders", "events.v2"} <= topics, topics
assert not {"bad-config", "too-many-replicas", "dry-run", "doomed"} & topics, topics
assert "grows" in topics, topics
described = {t["name"]: t for t in admin.describe_topics(["orders", "events.v2"])}
assert len(described["orders"]["partitions"]) == 8, described["orders"]
assert len(described["events.v2"]["partitions"]) == 3, described["events.v2"]
grows = admin.describe_topics(["grows"])[0]
assert len(grows["partitions"]) == 6, grows
for p in described["orders"]["partitions"]:
    leader = p["leader_id"]
    assert p["error_code"] == 0 and 0 <= leader < brokers and p["replica_nodes"] == [leader], p
    assert p["isr_nodes"] == [leader], p
if brokers > 1:
    placed = {p["partition_index"]: p for p in admin.describe_topics(["placed"])[0]["partitions"]}
    for index, replicas in {0: [1, 0], 1: [0, 1], 2: [1, 0], 3: [0, 1]}.items():
        p = placed[index]
        assert p["replica_nodes"] == replicas and p["leader_id"] == replicas[0], p
        assert sorted(p["isr_nodes"]) == sorted(replicas), p
    assert "misplaced" not in topics, topics
    for p in admin.describe_topics(["everywhere"])[0]["partitions"]:
        assert sorted(p["replica_nodes"]) == list(range(brokers)), p
        assert sorted(p["isr_nodes"]) == list(range(brokers)), p
        assert p["leader_id"] in p["replica_nodes"], p
leaders = {p["leader_id"] for p in described["orders"]["partitions"]}
assert leaders == set(range(brokers)), f"8 partitions over {brokers} brokers: {leaders}"
cluster = admin.describe_cluster()
assert sorted(b["broker_id"] for b in cluster["brokers"]) == list(range(brokers)), cluster
assert described["orders"]["topic_id"] != "00000000-0000-0000-0000-000000000000"
configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "orders")], config_filter="all")
orders = {k: (v["value"], v["config_source"]) for k, v in configs["topic"]["orders"].items()}
assert orders["retention.ms"] == ("3600000", "DYNAMIC_TOPIC_CONFIG"), orders
assert orders["segment.bytes"] == ("1048576", "DYNAMIC_TOPIC_CONFIG"), orders
assert orders["retention.bytes"] == ("1073741824", "DYNAMIC_DEFAULT_BROKER_CONFIG"), orders
assert orders["cleanup.policy"] == ("delete", "DEFAULT_CONFIG"), orders
assert len(orders) == 36, orders  # every Kafka 3.9 topic config
broker = admin.describe_configs([ConfigResource(ConfigResourceType.BROKER, "0")], config_filter="all")["broker"]["0"]
assert broker["log.retention.bytes"]["value"] == "1073741824", broker
assert broker["log.retention.ms"]["value"] == "604800000", broker
if brokers == 1:  # a broker alone: its partitions can move nowhere
    orders0 = TopicPartition("orders", 0)
    moved = admin.alter_partition_reassignments({orders0: [0]})
    assert moved == {orders0: None}, moved
    refused = admin.alter_partition_reassignments({orders0: [1]})
    assert refused == {orders0: InvalidReplicationAssignmentError}, refused
    cancelled = admin.alter_partition_reassignments({orders0: None})
    assert cancelled == {orders0: NoReassignmentInProgressError}, cancelled
    assert admin.list_partition_reassignments() == {}
if brokers == 1:  # DescribeLogDirs tells of one broker's disks
    dirs = admin.describe_log_dirs()
    sizes = {(t["name"], p["partition_index"]): p["partition_size"]
             for b in dirs for d in b["log_dirs"] for t in d["topics"] for p in t["partitions"]}
    assert ("orders", 7) in sizes and ("grows", 5) in sizes, sizes
    assert not any(name == "doomed" for name, _ in sizes), sizes
admin.close()
print(f"kafka-python admin {phase}: ok")
