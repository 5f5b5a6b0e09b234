"""kafka-python: DescribeConfigs of the broker lists its settings as Kafka
names them (ids, listeners, log dirs, partitions, group and offsets
settings, topic defaults), with sources; a topic's config comes with its
synonyms at each level. Usage: broker_configs.py BOOTSTRAP NODE_ID"""
import sys

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

bootstrap, node_id = sys.argv[1], sys.argv[2]
admin = KafkaAdminClient(bootstrap_servers=bootstrap)

described = admin.describe_configs([ConfigResource(ConfigResourceType.BROKER, node_id)], config_filter="all")
broker = described["broker"][node_id]
expect = {
    "broker.id": node_id,
    "node.id": node_id,
    "advertised.listeners": f"PLAINTEXT://{bootstrap}",
    "num.partitions": "3",
    "auto.create.topics.enable": "true",
    "group.initial.rebalance.delay.ms": "0",
    "offsets.topic.num.partitions": "50",
    "log.retention.ms": "604800000",
}
for key, value in expect.items():
    assert key in broker, f"{key} missing from {sorted(broker)}"
    assert broker[key]["value"] == value, (key, broker[key])
assert broker["log.dirs"]["value"], broker["log.dirs"]
assert broker["num.partitions"]["read_only"] and broker["num.partitions"]["config_source"] == "STATIC_BROKER_CONFIG", broker["num.partitions"]
assert broker["offsets.topic.num.partitions"]["config_source"] == "DEFAULT_CONFIG", broker["offsets.topic.num.partitions"]
assert not broker["log.retention.ms"]["read_only"], broker["log.retention.ms"]

admin.create_topics([NewTopic("synonyms", 1, 1, topic_configs={"retention.ms": "3600000"})])
described = admin.describe_configs(
    [ConfigResource(ConfigResourceType.TOPIC, "synonyms", ["retention.ms"])],
    include_synonyms=True, config_filter="all")
entry = described["topic"]["synonyms"]["retention.ms"]
assert entry["value"] == "3600000" and entry["config_source"] == "DYNAMIC_TOPIC_CONFIG", entry
synonyms = [(s["name"], s["value"], s["source"]) for s in entry["synonyms"]]
assert synonyms == [("retention.ms", "3600000", "DYNAMIC_TOPIC_CONFIG"),
                    ("log.retention.ms", "604800000", "DEFAULT_CONFIG")], synonyms
print("broker configs: ok")
