"""kafka-python speaking Produce v2 (message format v1, as a 0.10 client
would): shardlog advertises Produce v0-2 (for librdkafka's compression
check, KAFKA-18659) but answers them with UNSUPPORTED_VERSION and stores
nothing; a current producer on the same broker still works.
Usage: legacy_produce.py BOOTSTRAP"""
import sys

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import UnsupportedVersionError

bootstrap = sys.argv[1]
topic = "legacy"

old = KafkaProducer(bootstrap_servers=bootstrap, api_version=(0, 10, 1), enable_idempotence=False, retries=0)
try:
    old.send(topic, b"from an old client").get(timeout=30)
    raise AssertionError("a Produce v2 request was accepted")
except UnsupportedVersionError as e:
    print("refused as expected:", e)
old.close()

new = KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
new.send(topic, b"from a current client").get(timeout=30)
new.close()

consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, consumer_timeout_ms=3000)
partition = TopicPartition(topic, 0)
consumer.assign([partition])
consumer.seek_to_beginning()
values = [m.value for m in consumer]
assert values == [b"from a current client"], values
consumer.close()
