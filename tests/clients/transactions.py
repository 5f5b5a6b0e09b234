"""kafka-python transactions: commits and aborts read back by read_committed
and read_uncommitted consumers, a producer fenced by a newer instance with
the same transactional.id, and a read-process-write step whose consumed
offsets are committed with the output (send_offsets_to_transaction):
visible to the group only once the transaction commits.
Usage: transactions.py BOOTSTRAP"""
import sys

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

bootstrap = sys.argv[1]
admin = KafkaAdminClient(bootstrap_servers=bootstrap)
admin.create_topics([NewTopic("py-txn", 3, 1), NewTopic("py-in", 2, 1), NewTopic("py-out", 2, 1)])


def read(topic, isolation, group=None):
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=3000, isolation_level=isolation, group_id=group,
                             enable_auto_commit=False)
    values = [m.value.decode() for m in consumer]
    consumer.close()
    return values


# Commits and aborts.
producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id="py-1")
producer.init_transactions()
committed, everything = [], []
for t in range(6):
    producer.begin_transaction()
    batch = [f"t{t}-{i}" for i in range(12)]
    for i, value in enumerate(batch):
        producer.send("py-txn", value=value.encode(), partition=i % 3)
    producer.flush()
    everything += batch
    if t % 2:
        producer.abort_transaction()
    else:
        producer.commit_transaction()
        committed += batch
got = read("py-txn", "read_committed")
assert sorted(got) == sorted(committed), f"read_committed: {len(got)} of {len(committed)}"
got = read("py-txn", "read_uncommitted")
assert sorted(got) == sorted(everything), f"read_uncommitted: {len(got)} of {len(everything)}"

# A newer instance fences the older one.
producer.begin_transaction()
producer.send("py-txn", value=b"from the fenced instance", partition=0)
producer.flush()
newer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id="py-1")
newer.init_transactions()
try:
    producer.commit_transaction()
    raise AssertionError("the fenced instance committed")
except KafkaError as e:
    print(f"the older instance is fenced: {type(e).__name__}")
newer.begin_transaction()
newer.send("py-txn", value=b"from the newer instance", partition=0)
newer.commit_transaction()
got = read("py-txn", "read_committed")
assert "from the newer instance" in got and "from the fenced instance" not in got, got
producer.close(timeout=5)

# Read-process-write: consumed offsets committed with the output.
plain = KafkaProducer(bootstrap_servers=bootstrap)
for i in range(20):
    plain.send("py-in", value=f"in-{i}".encode(), partition=i % 2)
plain.flush()
plain.close()
group = "py-rpw"
consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                         enable_auto_commit=False, isolation_level="read_committed")
parts = [TopicPartition("py-in", 0), TopicPartition("py-in", 1)]
consumer.assign(parts)
records = []
while len(records) < 20:
    for batch in consumer.poll(timeout_ms=1000).values():
        records += batch
offsets = {tp: OffsetAndMetadata(consumer.position(tp), "", -1) for tp in parts}


def process(abort):
    newer.begin_transaction()
    for r in records:
        newer.send("py-out", value=r.value.upper(), partition=r.partition)
    newer.send_offsets_to_transaction(offsets, consumer.group_metadata())
    newer.flush()
    if abort:
        newer.abort_transaction()
    else:
        newer.commit_transaction()


process(abort=True)
assert all(consumer.committed(tp) is None for tp in parts), "aborted offsets are not committed"
process(abort=False)
assert [consumer.committed(tp) for tp in parts] == [10, 10], [consumer.committed(tp) for tp in parts]
consumer.close()
out = read("py-out", "read_committed")
assert sorted(out) == sorted(f"IN-{i}" for i in range(20)), out
print(f"kafka-python transactions: {len(committed)} committed, {len(everything) - len(committed)} aborted, "
      f"fencing and read-process-write with offsets in the transaction")
newer.close()
