"""Capture run for kafka-python: topic, 5 keyed gzip messages with headers, consume them. See README.md."""
import sys
from kafka import KafkaProducer, KafkaConsumer, KafkaAdminClient, TopicPartition
from kafka.admin import NewTopic
b = sys.argv[1]
KafkaAdminClient(bootstrap_servers=b).create_topics([NewTopic("golden-kp", num_partitions=1, replication_factor=1)])
p = KafkaProducer(bootstrap_servers=b, enable_idempotence=False, acks="all", linger_ms=50, compression_type="gzip", client_id="golden-kafka-python")
fs = [p.send("golden-kp", key=f"k{i}".encode(), value=f"value-{i}".encode() * 4, headers=[("h", str(i).encode())], timestamp_ms=1_700_000_000_000 + i) for i in range(5)]
p.flush(); [f.get(10) for f in fs]; p.close()
c = KafkaConsumer(bootstrap_servers=b, group_id=None, client_id="golden-kafka-python", consumer_timeout_ms=3000)
c.assign([TopicPartition("golden-kp", 0)]); c.seek(TopicPartition("golden-kp", 0), 0)
print([m.value for m in c])
