"""The stall a producer sees when a partition's leader dies: used by
bench/scripts/cluster.sh. Usage: failover.py BOOTSTRAP TOPIC PID_DIR SIGNAL
[SECONDS]

Finds the leader of TOPIC's partition 0, produces to it one message at a
time (kafka-python, acks=all, retrying), sends SIGNAL (KILL or TERM) to the
leader's process (its pid in PID_DIR/<node-id>), goes on producing for
SECONDS (default 25) and prints the longest wait between two consecutive
acknowledgements: the time from the death to the first write acknowledged
by the new leader, as the application sees it."""
import os
import signal
import sys
import time

from kafka import KafkaAdminClient, KafkaProducer

bootstrap, topic, pid_dir, sig = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
seconds = float(sys.argv[5]) if len(sys.argv) > 5 else 25.0
admin = KafkaAdminClient(bootstrap_servers=bootstrap)
(described,) = admin.describe_topics([topic])
leader = next(p["leader_id"] for p in described["partitions"] if p["partition_index"] == 0)
admin.close()
with open(os.path.join(pid_dir, str(leader))) as f:
    pid = int(f.read())

producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0, retries=1_000_000,
                         retry_backoff_ms=20, request_timeout_ms=5000, delivery_timeout_ms=120_000,
                         metadata_max_age_ms=60_000)
for _ in range(100):
    producer.send(topic, b"warm", partition=0).get(timeout=60)

acked = []
killed_at = None
start = time.monotonic()
while time.monotonic() - start < seconds:
    if killed_at is None and time.monotonic() - start >= 1.0:
        killed_at = time.monotonic()
        os.kill(pid, getattr(signal, "SIG" + sig))
    producer.send(topic, b"x", partition=0).get(timeout=120)
    acked.append(time.monotonic())
producer.close()
after = [t for t in acked if t >= killed_at]
before = max(t for t in acked if t < killed_at)
gaps = [b - a for a, b in zip([before] + after, after)]
print(f"leader {leader} (pid {pid}) SIG{sig}: longest stall {max(gaps):.3f} s, "
      f"first ack {after[0] - killed_at:.3f} s after the signal, {len(after)} acks after")
