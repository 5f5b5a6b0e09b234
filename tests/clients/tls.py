"""kafka-python over TLS.

`tls.py clients BOOTSTRAP CA PROTOCOL [--cert C --key K] [--sasl MECH USER PASSWORD]`:
an admin client creates a topic, a producer sends 10 messages (acks=all),
a consumer in a group reads them back and commits, over SSL or SASL_SSL
(the server's certificate checked against CA, host name included).

`tls.py probe HOST PORT CA [--cert C --key K]`: one TLS handshake with
Python's ssl module; prints `accepted SUBJECT-CN` (the server
certificate's common name) or `refused REASON`.
"""
import argparse
import socket
import ssl
import sys

parser = argparse.ArgumentParser()
parser.add_argument("mode", choices=["clients", "probe"])
parser.add_argument("rest", nargs="+")
parser.add_argument("--cert")
parser.add_argument("--key")
parser.add_argument("--sasl", nargs=3)
args = parser.parse_args()

if args.mode == "probe":
    host, port, ca = args.rest
    context = ssl.create_default_context(cafile=ca)
    if args.cert:
        context.load_cert_chain(args.cert, args.key)
    try:
        with socket.create_connection((host, int(port)), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname=host) as tls:
                # TLS 1.3: a refused client certificate shows on the first
                # read, after the handshake returned.
                tls.sendall(b"\x00\x00\x00\x0a\x00\x12\x00\x00\x00\x00\x00\x01\x00\x00")
                answer = tls.recv(4)
                if not answer:
                    print("refused closed")
                    sys.exit(0)
                subject = dict(x[0] for x in tls.getpeercert()["subject"])
                print("accepted", subject.get("commonName"), tls.version())
    except (ssl.SSLError, ConnectionError, OSError) as e:
        print("refused", type(e).__name__, e)
    sys.exit(0)

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

bootstrap, ca, protocol = args.rest
config = dict(bootstrap_servers=bootstrap, security_protocol=protocol, ssl_cafile=ca)
if args.cert:
    config.update(ssl_certfile=args.cert, ssl_keyfile=args.key)
if args.sasl:
    mechanism, user, password = args.sasl
    config.update(sasl_mechanism=mechanism, sasl_plain_username=user, sasl_plain_password=password)
topic = "tls-" + protocol.lower() + ("-" + args.sasl[0].lower() if args.sasl else "")

admin = KafkaAdminClient(**config)
admin.create_topics([NewTopic(topic, 2, 1)])
assert topic in admin.list_topics(), admin.list_topics()
admin.close()
producer = KafkaProducer(acks="all", **config)
for i in range(10):
    producer.send(topic, key=b"k%d" % i, value=b"v-%d" % i)
producer.flush()
producer.close()
consumer = KafkaConsumer(topic, group_id="g-" + topic, auto_offset_reset="earliest",
                         enable_auto_commit=False, consumer_timeout_ms=15000, **config)
values = sorted(m.value for m in consumer)
consumer.commit()
consumer.close()
assert values == sorted(b"v-%d" % i for i in range(10)), values
print(protocol, "ok:", len(values))
