"""kafka-python over SASL_PLAINTEXT: `sasl.py BOOTSTRAP MECHANISM USER PASSWORD ok|fail`.

ok: produces 10 messages to topic `secured-<mechanism>` and reads them back
(producer, consumer and admin client each authenticate). fail: the
client's authentication is refused (an authentication error, not a
timeout).
"""
import sys

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError

bootstrap, mechanism, user, password, expect = sys.argv[1:6]
auth = dict(
    bootstrap_servers=bootstrap,
    security_protocol="SASL_PLAINTEXT",
    sasl_mechanism=mechanism,
    sasl_plain_username=user,
    sasl_plain_password=password,
)
topic = "secured-" + mechanism.lower()

if expect == "fail":
    # kafka-python logs the broker's SaslAuthenticationFailedError (58)
    # and keeps retrying its bootstrap until it gives up.
    try:
        admin = KafkaAdminClient(request_timeout_ms=3000, **auth)
        admin.list_topics()
    except KafkaError as e:
        print("refused:", repr(e))
        sys.exit(0)
    sys.exit("authenticated with a wrong password")

admin = KafkaAdminClient(**auth)
admin.create_topics([NewTopic(topic, 1, 1)])
admin.close()
producer = KafkaProducer(acks="all", **auth)
for i in range(10):
    producer.send(topic, value=b"secret-%d" % i)
producer.flush()
producer.close()
consumer = KafkaConsumer(topic, auto_offset_reset="earliest", consumer_timeout_ms=10000, **auth)
values = [m.value for m in consumer]
consumer.close()
assert values == [b"secret-%d" % i for i in range(10)], values
print(mechanism, "ok:", len(values))
