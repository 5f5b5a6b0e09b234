"""aiokafka (an independent asyncio client) against shardlog, with its
defaults: for every codec, keyed messages produced to a 3-partition topic,
then read back by a consumer in a group (subscribe, commit) in order per
partition; committed offsets seen by a second member of the group; offsets
looked up by time and at the ends (ListOffsets). Usage: aiokafka_clients.py
BOOTSTRAP"""
import asyncio
import sys
from collections import defaultdict

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

BOOTSTRAP = sys.argv[1]
COUNT = 300
BASE_TS = 1_700_000_000_000


async def produce(topic, codec):
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, compression_type=codec)
    await producer.start()
    sent = defaultdict(list)
    try:
        for i in range(COUNT):
            key = f"key-{i % 17}".encode()
            value = f"{codec} message {i} ".encode() * (1 + i % 5)
            meta = await producer.send_and_wait(topic, value, key=key, timestamp_ms=BASE_TS + i)
            sent[meta.partition].append((meta.offset, key, value))
    finally:
        await producer.stop()
    return sent


async def consume_in_group(topic, group, expected):
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=BOOTSTRAP, group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    got = defaultdict(list)
    try:
        while sum(len(v) for v in got.values()) < COUNT:
            batches = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 60)
            for tp, messages in batches.items():
                got[tp.partition].extend((m.offset, m.key, m.value) for m in messages)
        await consumer.commit()
    finally:
        await consumer.stop()
    assert dict(got) == dict(expected), f"{topic}: read differs from what was acknowledged"


async def check_committed_and_offsets(topic, group):
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(3)]
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        assert sum(ends.values()) == COUNT, ends
        assert all(v == 0 for v in starts.values()), starts
        for tp in partitions:
            committed = await consumer.committed(tp)
            assert committed == ends[tp], (tp, committed, ends[tp])
        # The first message at or after a time, per partition.
        found = await consumer.offsets_for_times({tp: BASE_TS + COUNT // 2 for tp in partitions})
        assert any(v is not None and v.timestamp >= BASE_TS + COUNT // 2 for v in found.values()), found
        late = await consumer.offsets_for_times({tp: BASE_TS + 10 * COUNT for tp in partitions})
        assert all(v is None for v in late.values()), late
    finally:
        await consumer.stop()


async def main():
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    codecs = ["gzip", "snappy", "lz4", "zstd"]
    try:
        await admin.create_topics([NewTopic(f"aio-{c}", 3, 1) for c in codecs])
    finally:
        await admin.close()
    for codec in codecs:
        topic = f"aio-{codec}"
        sent = await produce(topic, codec)
        await consume_in_group(topic, f"aio-group-{codec}", sent)
        await check_committed_and_offsets(topic, f"aio-group-{codec}")
        print(f"aiokafka {codec}: {COUNT} messages produced, consumed in a group, committed")
    print("aiokafka: ok")


asyncio.run(main())
