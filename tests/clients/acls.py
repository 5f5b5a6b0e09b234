"""ACLs through kafka-python: `acls.py BOOTSTRAP`.

The broker has an authorizer, super user `admin` and users `alice` and
`bob` (SASL PLAIN). As admin: topics `orders` and `ticks-eu`, and ACLs
(alice: Write and Read on `orders`, Read on groups prefixed `team-`;
bob: Read on topics prefixed `ticks-`, a Deny of Read on group
`team-secret`), described and one deleted. Then each user gets what the
ACLs give and the authorization errors Kafka gives otherwise; nothing is
written when a produce is refused.
"""
import sys

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    NewTopic,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
)
from kafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaError,
    TopicAuthorizationFailedError,
)

bootstrap = sys.argv[1]


def auth(user, password):
    return dict(
        bootstrap_servers=bootstrap,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_plain_username=user,
        sasl_plain_password=password,
    )


def acl(principal, operation, permission, rtype, name, pattern=ACLResourcePatternType.LITERAL):
    return ACL(principal, "*", operation, permission, ResourcePattern(rtype, name, pattern))


ALLOW, DENY = ACLPermissionType.ALLOW, ACLPermissionType.DENY
admin = KafkaAdminClient(**auth("admin", "adm1n"))
admin.create_topics([NewTopic("orders", 1, 1), NewTopic("ticks-eu", 1, 1)])
acls = [
    acl("User:alice", ACLOperation.WRITE, ALLOW, ResourceType.TOPIC, "orders"),
    acl("User:alice", ACLOperation.READ, ALLOW, ResourceType.TOPIC, "orders"),
    acl("User:alice", ACLOperation.READ, ALLOW, ResourceType.GROUP, "team-",
        ACLResourcePatternType.PREFIXED),
    acl("User:alice", ACLOperation.DESCRIBE, ALLOW, ResourceType.TOPIC, "ticks-eu"),
    acl("User:bob", ACLOperation.READ, ALLOW, ResourceType.TOPIC, "ticks-",
        ACLResourcePatternType.PREFIXED),
    acl("User:bob", ACLOperation.READ, ALLOW, ResourceType.GROUP, "team-",
        ACLResourcePatternType.PREFIXED),
    acl("User:bob", ACLOperation.READ, DENY, ResourceType.GROUP, "team-secret"),
    acl("User:carol", ACLOperation.ALL, ALLOW, ResourceType.TOPIC, "gone"),
]
created = admin.create_acls(acls)
assert not created["failed"], created
everything = ACLFilter(None, None, ACLOperation.ANY, ACLPermissionType.ANY,
                       ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY))
found, _ = admin.describe_acls(everything)
assert len(found) == len(acls), found
# What applies to topic ticks-eu (MATCH): bob's prefix and alice's literal.
matching = ACLFilter(None, None, ACLOperation.ANY, ACLPermissionType.ANY,
                     ResourcePatternFilter(ResourceType.TOPIC, "ticks-eu", ACLResourcePatternType.MATCH))
found, _ = admin.describe_acls(matching)
assert sorted(a.principal for a in found) == ["User:alice", "User:bob"], found
carols = ACLFilter("User:carol", None, ACLOperation.ANY, ACLPermissionType.ANY,
                   ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY))
deleted = admin.delete_acls([carols])
assert len(deleted[0][1]) == 1, deleted
found, _ = admin.describe_acls(everything)
assert len(found) == len(acls) - 1, found
print("acls: created, described, deleted")

# alice writes and reads orders, in a team- group.
alice = auth("alice", "al1ce")
producer = KafkaProducer(acks="all", **alice)
for i in range(5):
    producer.send("orders", value=b"o-%d" % i).get(timeout=30)
try:
    producer.send("ticks-eu", value=b"no").get(timeout=30)
    sys.exit("alice wrote to ticks-eu")
except TopicAuthorizationFailedError as e:
    print("alice refused ticks-eu:", type(e).__name__)
producer.close()
consumer = KafkaConsumer("orders", group_id="team-orders", auto_offset_reset="earliest",
                         consumer_timeout_ms=10000, **alice)
values = [m.value for m in consumer]
consumer.commit()
consumer.close()
assert values == [b"o-%d" % i for i in range(5)], values
try:
    consumer = KafkaConsumer("orders", group_id="other", auto_offset_reset="earliest",
                             consumer_timeout_ms=5000, **alice)
    list(consumer)
    sys.exit("alice consumed in group other")
except GroupAuthorizationFailedError as e:
    print("alice refused group other:", type(e).__name__)
alice_admin = KafkaAdminClient(**alice)
topics = set(alice_admin.list_topics())
assert topics == {"orders", "ticks-eu"}, topics
# kafka-python reports CreateAcls failures in the result.
refused = alice_admin.create_acls(
    [acl("User:alice", ACLOperation.ALL, ALLOW, ResourceType.CLUSTER, "kafka-cluster")])
assert not refused["succeeded"] and refused["failed"] == [ClusterAuthorizationFailedError], refused
print("alice refused CreateAcls:", refused["failed"][0].__name__)
try:
    alice_admin.describe_acls(everything)
    sys.exit("alice described the ACLs")
except ClusterAuthorizationFailedError as e:
    print("alice refused DescribeAcls:", type(e).__name__)
alice_admin.close()

# bob reads ticks- topics, not in team-secret (deny wins), never writes.
bob = auth("bob", "b0b")
bob_admin = KafkaAdminClient(**bob)
assert set(bob_admin.list_topics()) == {"ticks-eu"}, bob_admin.list_topics()
bob_admin.close()
try:
    consumer = KafkaConsumer("ticks-eu", group_id="team-secret", consumer_timeout_ms=5000, **bob)
    list(consumer)
    sys.exit("bob consumed in team-secret")
except GroupAuthorizationFailedError as e:
    print("bob refused team-secret:", type(e).__name__)
consumer = KafkaConsumer(group_id="team-ticks", consumer_timeout_ms=3000, **bob)
consumer.assign([TopicPartition("ticks-eu", 0)])
consumer.seek_to_beginning()
assert [m.value for m in consumer] == [], "ticks-eu has nothing: alice's produce was refused"
consumer.close()

# Nothing was written where refused.
check = KafkaConsumer(**auth("admin", "adm1n"))
ends = check.end_offsets([TopicPartition("ticks-eu", 0), TopicPartition("orders", 0)])
assert ends == {TopicPartition("ticks-eu", 0): 0, TopicPartition("orders", 0): 5}, ends
check.close()
admin.close()
print("acls ok")
