"""A consumer of many partitions with and without incremental fetch
sessions (KIP-227), through kafka-python (which opens one by default):
while a producer writes RATE messages a second to random partitions, one
consumer reads all PARTITIONS for SECONDS in each mode, in turn, twice.
Prints, per mode, the broker's CPU (from /proc/PID/stat), the consumer's
own CPU, its Fetch rate (its own metric) and the messages it read.

    .venv/bin/python bench/scripts/fetch_sessions.py BOOTSTRAP BROKER_PID \\
        [PARTITIONS [SECONDS [RATE]]]

The broker must be running; the topic `sessions-bench` is created (or
reused) with PARTITIONS partitions."""
import os
import random
import resource
import sys
import threading
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

bootstrap, pid = sys.argv[1], int(sys.argv[2])
partitions = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 20
rate = float(sys.argv[5]) if len(sys.argv) > 5 else 200
topic = "sessions-bench"
tick = os.sysconf("SC_CLK_TCK")


def broker_cpu():
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick


def client_cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


admin = KafkaAdminClient(bootstrap_servers=bootstrap)
try:
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
except TopicAlreadyExistsError:
    pass
admin.close()

stop = threading.Event()


def produce():
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=0)
    rng = random.Random(1)
    while not stop.is_set():
        producer.send(topic, value=b"x" * 100, partition=rng.randrange(partitions))
        time.sleep(1 / rate)
    producer.close()


writer = threading.Thread(target=produce)
writer.start()
time.sleep(2)
print(f"{partitions} partitions, {rate:.0f} msg/s written, {seconds:.0f} s per run")
print("| sessions | broker CPU ms/s | consumer CPU ms/s | fetches/s | messages/s |")
print("| --- | --- | --- | --- | --- |")
for sessions in [False, True, False, True]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             enable_incremental_fetch_sessions=sessions, fetch_max_wait_ms=500)
    consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
    consumer.seek_to_end()
    consumer.poll(timeout_ms=2000)  # positions resolved, the session (if any) open
    broker0, client0, start = broker_cpu(), client_cpu(), time.time()
    read = 0
    while time.time() - start < seconds:
        read += sum(len(m) for m in consumer.poll(timeout_ms=100).values())
    elapsed = time.time() - start
    # kafka-python's own count (a rate over its last 30 s window).
    fetched = consumer.metrics().get("consumer-fetch-manager-metrics", {}).get("fetch-rate", 0)
    print(f"| {'on' if sessions else 'off'} | {1000 * (broker_cpu() - broker0) / elapsed:.0f} "
          f"| {1000 * (client_cpu() - client0) / elapsed:.0f} | {fetched:.1f} | {read / elapsed:.0f} |")
    consumer.close()
stop.set()
writer.join()
