"""kafka-python: every compression codec round trip through shardlog, which
stores producers' compressed batches as they came. Usage: compression.py BOOTSTRAP"""
import sys

from kafka import KafkaConsumer, KafkaProducer

bootstrap = sys.argv[1]
for codec in ["gzip", "snappy", "lz4", "zstd"]:
    topic = f"codec-{codec}"
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type=codec,
                             enable_idempotence=False, linger_ms=20, batch_size=64 * 1024)
    sent = [f"{codec} message {i} ".encode() * (1 + i % 7) for i in range(500)]
    futures = [producer.send(topic, value=v, key=str(i).encode()) for i, v in enumerate(sent)]
    producer.flush()
    for f in futures:
        f.get(timeout=30)
    producer.close()
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=10000, group_id=None)
    got = []
    for message in consumer:
        got.append(message.value)
        if len(got) == len(sent):
            break
    consumer.close()
    assert got == sent, f"{codec}: read {len(got)} of {len(sent)}, equal prefix {sum(1 for a, b in zip(got, sent) if a == b)}"
    print(f"{codec}: {len(got)} messages round trip")
print("compression: ok")
