"""aiokafka transactions: commits and aborts read back by read_committed
and read_uncommitted consumers (the markers never surface as records), and
a read-process-write step whose offsets commit with its output.
Usage: aiokafka_transactions.py BOOTSTRAP"""
import asyncio
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

BOOTSTRAP = sys.argv[1]


async def read_all(topic, isolation, expected):
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=BOOTSTRAP, auto_offset_reset="earliest",
                                isolation_level=isolation, enable_auto_commit=False)
    await consumer.start()
    values = []
    try:
        while len(values) < expected:
            batches = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 30)
            for messages in batches.values():
                values += [m.value.decode() for m in messages]
        # Nothing more (the markers are not records).
        extra = await consumer.getmany(timeout_ms=500)
        values += [m.value.decode() for messages in extra.values() for m in messages]
    finally:
        await consumer.stop()
    return values


async def main():
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    await admin.create_topics([NewTopic("aio-txn", 3, 1), NewTopic("aio-out", 1, 1)])
    await admin.close()

    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, transactional_id="aio-1")
    await producer.start()
    committed, everything = [], []
    try:
        for t in range(6):
            batch = [f"t{t}-{i}" for i in range(9)]
            everything += batch
            try:
                async with producer.transaction():
                    for i, value in enumerate(batch):
                        await producer.send_and_wait("aio-txn", value.encode(), partition=i % 3)
                    if t % 3 == 1:
                        raise RuntimeError("abort")
                committed += batch
            except RuntimeError:
                pass
        got = await read_all("aio-txn", "read_committed", len(committed))
        assert sorted(got) == sorted(committed), f"read_committed: {len(got)} of {len(committed)}"
        got = await read_all("aio-txn", "read_uncommitted", len(everything))
        assert sorted(got) == sorted(everything), f"read_uncommitted: {len(got)} of {len(everything)}"

        # Read-process-write: the offsets commit with the output.
        consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id="aio-rpw",
                                    auto_offset_reset="earliest", enable_auto_commit=False,
                                    isolation_level="read_committed")
        await consumer.start()
        tp = TopicPartition("aio-txn", 0)
        consumer.assign([tp])
        records = []
        while len(records) < 12:
            records += (await consumer.getmany(tp, timeout_ms=1000)).get(tp, [])
        async with producer.transaction():
            for r in records:
                await producer.send_and_wait("aio-out", r.value.upper(), partition=0)
            await producer.send_offsets_to_transaction({tp: records[-1].offset + 1}, "aio-rpw")
        assert await consumer.committed(tp) == records[-1].offset + 1
        await consumer.stop()
        out = await read_all("aio-out", "read_committed", len(records))
        assert out == [r.value.decode().upper() for r in records], out
    finally:
        await producer.stop()
    print(f"aiokafka transactions: {len(committed)} committed, {len(everything) - len(committed)} aborted, "
          f"read-process-write with offsets in the transaction")


asyncio.run(main())
