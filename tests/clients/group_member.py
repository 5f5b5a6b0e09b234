"""A kafka-python group member that reads without committing until it is
killed. Prints "assigned P1,P2,..." each time its assignment changes.
Usage: group_member.py BOOTSTRAP GROUP TOPIC"""
import logging
import sys

from kafka import KafkaConsumer

bootstrap, group, topic = sys.argv[1:4]
# Kept on stderr: a test that fails shows how this member saw the group.
logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="member %(asctime)s %(name)s %(message)s")
logging.getLogger("kafka.coordinator").setLevel(logging.DEBUG)
logging.getLogger("kafka.conn").setLevel(logging.DEBUG)
consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                         auto_offset_reset="earliest", session_timeout_ms=6000, heartbeat_interval_ms=500)
last = None
while True:
    consumer.poll(timeout_ms=100)
    assigned = sorted(tp.partition for tp in consumer.assignment())
    if assigned != last:
        print("assigned " + ",".join(map(str, assigned)), flush=True)
        last = assigned
