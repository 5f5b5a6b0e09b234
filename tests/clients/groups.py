"""kafka-python as a group consumer and a group admin through shardlog:
subscribe and commit, then list, describe, fetch offsets, delete offsets
and delete the group. Usage: groups.py BOOTSTRAP"""
import sys

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import GroupIdNotFoundError

bootstrap = sys.argv[1]
topic, group = "kp-groups", "kp-group"
admin = KafkaAdminClient(bootstrap_servers=bootstrap)
admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])
producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
for i in range(100):
    producer.send(topic, value=str(i).encode(), partition=i % 4)
producer.flush()
producer.close()

consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                         auto_offset_reset="earliest", consumer_timeout_ms=15000)
values = set()
for message in consumer:
    values.add(int(message.value))
    if len(values) == 100:
        break
assert values == set(range(100)), f"read {len(values)} of 100"
consumer.commit()

listed = admin.list_groups()
print("listed:", listed)
assert any(g[0] == group if isinstance(g, tuple) else g.get("group_id") == group for g in listed), listed
described = admin.describe_groups([group])
print("described:", described)
info = described[group] if isinstance(described, dict) else described[0]
state = info["group_state"] if isinstance(info, dict) else info.state
assert state == "Stable", state
members = info["members"] if isinstance(info, dict) else info.members
assert len(members) == 1, members

offsets = admin.list_group_offsets({group: None})[group]
print("offsets:", offsets)
assert {tp.partition: om.offset for tp, om in offsets.items()} == {0: 25, 1: 25, 2: 25, 3: 25}, offsets

consumer.close()  # leaves: the group is empty, its offsets stay
described = admin.describe_groups([group])
info = described[group] if isinstance(described, dict) else described[0]
state = info["group_state"] if isinstance(info, dict) else info.state
assert state == "Empty", state

deleted = admin.delete_group_offsets(group, [TopicPartition(topic, 0)])
print("delete offsets:", deleted)
assert all(e.errno == 0 for e in deleted.values()), deleted
offsets = admin.list_group_offsets({group: None})[group]
assert sorted(tp.partition for tp in offsets) == [1, 2, 3], offsets

results = dict(admin.delete_groups([group, "never-existed"]))
print("delete groups:", results)
assert results == {group: "OK", "never-existed": GroupIdNotFoundError.__name__}, results
assert admin.list_group_offsets({group: None})[group] == {}
print("groups: ok")
