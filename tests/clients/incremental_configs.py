"""kafka-python: IncrementalAlterConfigs with APPEND and SUBTRACT on a
list config (cleanup.policy), refused on a config that is not a list.
Usage: incremental_configs.py BOOTSTRAP"""
import sys

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

admin = KafkaAdminClient(bootstrap_servers=sys.argv[1])
admin.create_topics([NewTopic("policies", 1, 1)])


def policy():
    wanted = ConfigResource(ConfigResourceType.TOPIC, "policies", ["cleanup.policy"])
    described = admin.describe_configs([wanted], config_filter="all")
    return set(described["topic"]["policies"]["cleanup.policy"]["value"].split(","))


def alter(key, op, value):
    resource = ConfigResource(ConfigResourceType.TOPIC, "policies", configs={key: (op, value)})
    result = admin.alter_configs([resource], incremental=True)
    return result["topic"]["policies"]


assert policy() == {"delete"}, policy()
alter("cleanup.policy", "APPEND", "compact")
assert policy() == {"delete", "compact"}, policy()
alter("cleanup.policy", "APPEND", "compact")
assert policy() == {"delete", "compact"}, policy()
alter("cleanup.policy", "SUBTRACT", "delete")
assert policy() == {"compact"}, policy()
error = alter("retention.ms", "APPEND", "1000")
assert "Error 40" in str(error) and "list configs" in str(error), error
assert policy() == {"compact"}, policy()
print("incremental configs: ok")
