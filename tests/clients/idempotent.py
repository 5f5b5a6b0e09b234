"""kafka-python with its defaults (idempotence on, acks=all): produce to an
auto-created topic and read everything back once, in order per partition.
Usage: idempotent.py BOOTSTRAP TOPIC COUNT"""
import sys

from kafka import KafkaConsumer, KafkaProducer

bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
producer = KafkaProducer(bootstrap_servers=bootstrap)
assert producer.config["enable_idempotence"], "kafka-python's default is idempotent"
futures = [producer.send(topic, key=str(i % 7).encode(), value=f"message {i}".encode()) for i in range(count)]
producer.flush()
sent = {}
for i, f in enumerate(futures):
    meta = f.get(timeout=30)
    sent.setdefault(meta.partition, []).append((meta.offset, f"message {i}".encode()))
producer.close()

consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                         consumer_timeout_ms=10000, group_id=None)
got = {}
for message in consumer:
    got.setdefault(message.partition, []).append((message.offset, message.value))
    if sum(len(v) for v in got.values()) == count:
        break
consumer.close()
for partition, records in sent.items():
    assert got.get(partition) == records, f"partition {partition}: {len(got.get(partition, []))} of {len(records)}"
print(f"idempotent kafka-python: {count} messages over {len(sent)} partitions, each once and in order")
