"""kafka-python manages SCRAM users: `scram_users.py BOOTSTRAP ADMIN PASSWORD`.

Authenticated as ADMIN (SCRAM-SHA-512), creates user `carol` (SCRAM-SHA-512,
8192 iterations, password `c4rol`) and `dave` (SCRAM-SHA-256), sees the
broker refuse what Kafka refuses, describes them (mechanisms and
iterations, never keys); then carol authenticates with SCRAM-SHA-512 and
produces and consumes.
"""
import sys

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import (
    NewTopic,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

bootstrap, admin_user, admin_password = sys.argv[1:4]


def auth(mechanism, user, password):
    return dict(
        bootstrap_servers=bootstrap,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism=mechanism,
        sasl_plain_username=user,
        sasl_plain_password=password,
    )


admin = KafkaAdminClient(**auth("SCRAM-SHA-512", admin_user, admin_password))
results = admin.alter_user_scram_credentials([
    UserScramCredentialUpsertion("carol", ScramMechanism.SCRAM_SHA_512, "c4rol", iterations=8192),
    UserScramCredentialUpsertion("dave", "SCRAM-SHA-256", "d4ve"),
])
assert results == {"carol": None, "dave": None}, results

refused = admin.alter_user_scram_credentials([
    # too few iterations
    UserScramCredentialUpsertion("erin", ScramMechanism.SCRAM_SHA_256, "x", iterations=1000),
    # the same user and mechanism twice
    UserScramCredentialUpsertion("frank", ScramMechanism.SCRAM_SHA_256, "x"),
    UserScramCredentialDeletion("frank", ScramMechanism.SCRAM_SHA_256),
    # a credential that does not exist
    UserScramCredentialDeletion("dave", ScramMechanism.SCRAM_SHA_512),
])
assert set(refused) == {"erin", "frank", "dave"}, refused
assert all(message for message in refused.values()), refused
assert "iterations" in refused["erin"], refused
assert "twice" in refused["frank"], refused
print("refused:", refused)

described = admin.describe_user_scram_credentials()
assert set(described) == {"carol", "dave"}, described
assert described["carol"]["credential_infos"] == [
    {"mechanism": ScramMechanism.SCRAM_SHA_512, "iterations": 8192}
], described
assert described["dave"]["credential_infos"] == [
    {"mechanism": ScramMechanism.SCRAM_SHA_256, "iterations": 4096}
], described
one = admin.describe_user_scram_credentials(["dave", "nobody"])
assert one["dave"]["error"] is None and one["nobody"]["error"], one
admin.create_topics([NewTopic("carols", 1, 1)])
admin.close()

carol = auth("SCRAM-SHA-512", "carol", "c4rol")
producer = KafkaProducer(acks="all", **carol)
for i in range(5):
    producer.send("carols", value=b"c-%d" % i)
producer.flush()
producer.close()
consumer = KafkaConsumer("carols", auto_offset_reset="earliest", consumer_timeout_ms=10000, **carol)
values = [m.value for m in consumer]
consumer.close()
assert values == [b"c-%d" % i for i in range(5)], values
print("carol ok:", len(values))
