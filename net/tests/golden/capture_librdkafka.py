"""Capture run for librdkafka (confluent-kafka): topic, 5 keyed lz4 messages with headers, consume them. See README.md."""
import sys
from confluent_kafka import Producer, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
b = sys.argv[1]
a = AdminClient({"bootstrap.servers": b}); a.create_topics([NewTopic("golden-rd", 1, 1)])["golden-rd"].result()
p = Producer({"bootstrap.servers": b, "compression.type": "lz4", "linger.ms": 50, "client.id": "golden-librdkafka"})
for i in range(5):
    p.produce("golden-rd", key=f"k{i}".encode(), value=f"value-{i}".encode() * 4, headers=[("h", str(i).encode())], timestamp=1_700_000_000_000 + i)
assert p.flush(10) == 0
c = Consumer({"bootstrap.servers": b, "group.id": "golden", "client.id": "golden-librdkafka", "enable.auto.commit": False})
c.assign([TopicPartition("golden-rd", 0, 0)])
got = []
while len(got) < 5:
    m = c.poll(10)
    assert m is not None
    if m.error(): continue
    got.append(m.value())
print(got)
c.close()
