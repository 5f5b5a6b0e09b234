"""kafka-python's consumer on incremental fetch sessions (KIP-227, its
default): while a producer writes to a few of 12 partitions at a time, a
consumer of all 12 reads every message once, in order per partition; the
broker holds its session meanwhile; pausing partitions (the client forgets
them from its session) and resuming them loses nothing.
Usage: fetch_sessions.py BOOTSTRAP METRICS_URL"""
import random
import sys
import time
import urllib.request

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

bootstrap, metrics_url = sys.argv[1], sys.argv[2]
topic, partitions, rounds = "fetch-sessions", 12, 60
seed = 20261205
print(f"seed {seed}")
rng = random.Random(seed)

admin = KafkaAdminClient(bootstrap_servers=bootstrap)
admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
admin.close()

consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                         auto_offset_reset="earliest", fetch_max_wait_ms=200)
assigned = [TopicPartition(topic, p) for p in range(partitions)]
consumer.assign(assigned)
producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)

sent = {}  # partition -> values in order
received = {p: [] for p in range(partitions)}


def drain(deadline):
    while time.time() < deadline:
        for tp, messages in consumer.poll(timeout_ms=100).items():
            received[tp.partition].extend(m.value.decode() for m in messages)
        if all(received[p] == sent.get(p, []) for p in range(partitions)):
            return True
    return False


for r in range(rounds):
    for p in rng.sample(range(partitions), rng.randint(1, 3)):
        value = f"r{r}-p{p}"
        producer.send(topic, value=value.encode(), partition=p).get(timeout=30)
        sent.setdefault(p, []).append(value)
    if r == rounds // 3:
        # Paused partitions leave the session; resumed ones come back.
        paused = assigned[:4]
        consumer.pause(*paused)
        drain(time.time() + 1)
        consumer.resume(*paused)
    assert drain(time.time() + 30), f"round {r}: {received} != {sent}"

with urllib.request.urlopen(metrics_url) as page:
    sessions = sum(float(line.rsplit(" ", 1)[1]) for line in page.read().decode().splitlines()
                   if line.startswith("shardlog_shard_fetch_sessions{"))
assert sessions >= 1, f"no fetch session held while the consumer fetched: {sessions}"
for p in range(partitions):
    assert received[p] == sent.get(p, []), (p, received[p], sent.get(p))
print(f"{sum(len(v) for v in sent.values())} messages over {partitions} partitions, {sessions:.0f} session(s)")
consumer.close()
producer.close()
