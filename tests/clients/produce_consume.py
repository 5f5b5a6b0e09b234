"""kafka-python producing and consuming through shardlog.
Usage: produce_consume.py BOOTSTRAP produce|consume N [TOPIC-CONFIG=VALUE...]
(topic configs apply when the produce phase creates the topic)"""
import sys

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

bootstrap, phase, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
topic = "pc-test"

def expected(i):
    return (f"key-{i % 50}".encode(), f"value-{i}".encode() * 3, [("h", f"{i}".encode())])

if phase == "produce":
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    configs = dict(arg.split("=", 1) for arg in sys.argv[4:])
    admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1, topic_configs=configs)])
    admin.close()
    # Idempotence (InitProducerId) is not served yet.
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, enable_idempotence=False)
    futures = []
    for i in range(count):
        key, value, headers = expected(i)
        futures.append(producer.send(topic, key=key, value=value, headers=headers, timestamp_ms=1_700_000_000_000 + i))
    producer.flush()
    offsets = [f.get(timeout=30) for f in futures]
    assert len(offsets) == count
    producer.close()
else:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=10000, group_id=None)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    seen = {}
    last_offset = {}
    for message in consumer:
        i = int(message.value.decode().split("value-")[1])
        key, value, headers = expected(i)
        assert message.key == key and message.value == value, message
        assert [(k, v) for k, v in message.headers] == headers, message.headers
        assert message.timestamp == 1_700_000_000_000 + i
        assert last_offset.get(message.partition, -1) < message.offset, "offsets increase within a partition"
        last_offset[message.partition] = message.offset
        seen[i] = message.partition
        if len(seen) == count:
            break
    assert len(seen) == count, f"read {len(seen)} of {count}"
    by_key = {}
    for i, p in seen.items():
        by_key.setdefault(expected(i)[0], set()).add(p)
    assert all(len(ps) == 1 for ps in by_key.values()), "each key on one partition"
    end = consumer.end_offsets(partitions)
    assert sum(end.values()) == count, end
    # ListOffsets by time: the first record at or after a timestamp.
    first = consumer.offsets_for_times({p: 1_700_000_000_000 for p in partitions})
    assert all(o is not None and o.offset == 0 for o in first.values()), first
    # DeleteRecords moves the log start offset (the beginning offsets).
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    target = partitions[0]
    cut = end[target] // 2
    admin.delete_records({target: cut})
    begin = consumer.beginning_offsets([target])
    assert begin[target] == cut, begin
    assert admin.describe_cluster()["cluster_id"], "DescribeCluster answers"
    admin.close()
    consumer.close()
print(f"kafka-python {phase} {count}: ok")
