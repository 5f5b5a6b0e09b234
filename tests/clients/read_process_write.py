"""A read-process-write loop with exactly-once semantics, as Kafka's docs
write it: a read_committed consumer in group GROUP reads IN, a
transactional producer writes each record upper-cased to the same partition
of OUT and commits the consumed offsets in the same transaction, ten
records at a time. Exits 0 once the group's committed offsets reach the end
of IN; on an error it aborts if it can and exits 1 (the caller starts it
again: the new instance fences the old and resumes from the committed
offsets). Prints one line per committed transaction.
Usage: read_process_write.py BOOTSTRAP IN OUT GROUP TRANSACTIONAL_ID"""
import sys

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

bootstrap, source, sink, group, txn_id = sys.argv[1:6]
consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                         enable_auto_commit=False, isolation_level="read_committed",
                         request_timeout_ms=10000, max_poll_records=10)
partitions = [TopicPartition(source, p) for p in sorted(consumer.partitions_for_topic(source))]
consumer.assign(partitions)
producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=txn_id, request_timeout_ms=10000,
                         max_block_ms=20000)
producer.init_transactions()
ends = consumer.end_offsets(partitions)
for tp in partitions:
    committed = consumer.committed(tp)
    consumer.seek(tp, committed if committed is not None else 0)
try:
    while any(consumer.position(tp) < ends[tp] for tp in partitions):
        batches = consumer.poll(timeout_ms=500, max_records=10)
        records = [r for batch in batches.values() for r in batch]
        if not records:
            continue
        producer.begin_transaction()
        for r in records:
            producer.send(sink, value=r.value.upper(), partition=r.partition)
        offsets = {tp: OffsetAndMetadata(consumer.position(tp), "", -1) for tp in partitions}
        producer.send_offsets_to_transaction(offsets, consumer.group_metadata())
        producer.commit_transaction()
        print(f"committed {len(records)}", flush=True)
except KafkaError as e:
    print(f"failed: {type(e).__name__}: {e}", flush=True)
    try:
        producer.abort_transaction()
    except Exception:
        pass
    sys.exit(1)
producer.close()
consumer.close()
