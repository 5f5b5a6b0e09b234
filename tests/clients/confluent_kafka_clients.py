"""confluent-kafka-python (on the librdkafka its wheel bundles, newer than
the rdkafka crate's) against a running broker: its producer with every
codec (idempotent, acks=all), classic and KIP-848 consumer groups with
commits, its AdminClient's calls, and transactions with offsets sent to the
transaction. Usage: confluent_kafka_clients.py BOOTSTRAP SCENARIO, where
SCENARIO is one of produce-consume, admin, transactions. Exits non-zero with
the reason on the first thing that does not hold."""

import sys
import time

from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    KafkaException,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
)

BOOTSTRAP = sys.argv[1]
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
PER_TOPIC = 600


def values(topic):
    return {f"k-{i}": f"{topic} value {i} " + "y" * (i % 90) for i in range(PER_TOPIC)}


# One client for the whole run: a future's client must outlive it.
ADMIN = AdminClient({"bootstrap.servers": BOOTSTRAP})


def wait_all(futures, what):
    for key, future in futures.items():
        try:
            future.result(timeout=30)
        except KafkaException as e:
            raise SystemExit(f"{what} {key}: {e}")


def create(topics, partitions=3):
    wait_all(ADMIN.create_topics([NewTopic(t, partitions, 1) for t in topics]), "create topic")


def produce(topic, codec, records, **conf):
    producer = Producer(
        {"bootstrap.servers": BOOTSTRAP, "compression.type": codec, "enable.idempotence": True, **conf}
    )
    errors = []

    def delivered(err, _msg):
        if err is not None:
            errors.append(err)

    for k, v in records.items():
        producer.produce(topic, key=k.encode(), value=v.encode(), on_delivery=delivered)
        producer.poll(0)
    left = producer.flush(30)
    if left or errors:
        raise SystemExit(f"produce {topic}: {left} undelivered, errors {errors[:3]}")


def consume(group, topics, want, protocol):
    conf = {
        "bootstrap.servers": BOOTSTRAP,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }
    if protocol == "consumer":
        conf["group.protocol"] = "consumer"
    consumer = Consumer(conf)
    consumer.subscribe(topics)
    got, last = {}, {}
    n, total = 0, sum(len(w) for w in want.values())
    deadline = time.time() + 90
    while n < total:
        if time.time() > deadline:
            raise SystemExit(f"group {group}: read {n} of {total}")
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            raise SystemExit(f"group {group}: {msg.error()}")
        tp = (msg.topic(), msg.partition())
        if tp in last and msg.offset() <= last[tp]:
            raise SystemExit(f"group {group}: {tp} offset {msg.offset()} after {last[tp]}")
        last[tp] = msg.offset()
        got.setdefault(msg.topic(), {})[msg.key().decode()] = msg.value().decode()
        n += 1
    consumer.commit(asynchronous=False)
    committed = consumer.committed([TopicPartition(t, p) for t in topics for p in range(3)], timeout=30)
    consumer.close()
    for topic, w in want.items():
        if got.get(topic) != w:
            raise SystemExit(f"group {group}: {topic} read back differs")
    for tp in committed:
        if tp.error or tp.offset != last.get((tp.topic, tp.partition), -1) + 1:
            raise SystemExit(f"group {group}: committed {tp}, last read {last.get((tp.topic, tp.partition))}")


def produce_consume():
    topics = [f"ck-{codec}" for codec in CODECS]
    create(topics)
    want = {t: values(t) for t in topics}
    for codec, topic in zip(CODECS, topics):
        produce(topic, codec, want[topic])
    consume("ck-classic", topics, want, "classic")
    consume("ck-848", topics, want, "consumer")
    print("produce-consume: ok")


def admin_calls():
    adm = ADMIN
    topic, doomed = "ck-admin", "ck-doomed"
    create([topic, doomed])
    produce(topic, "none", values(topic))

    listed = adm.list_topics(timeout=30)
    if len(listed.topics[topic].partitions) != 3 or not listed.brokers:
        raise SystemExit(f"list_topics: {listed.topics.get(topic)}")
    described = adm.describe_topics(TopicCollection([topic])).get(topic).result(timeout=30)
    if len(described.partitions) != 3:
        raise SystemExit(f"describe_topics: {described}")
    cluster = adm.describe_cluster().result(timeout=30)
    if not cluster.nodes or cluster.controller is None:
        raise SystemExit(f"describe_cluster: {cluster}")

    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    altered = adm.incremental_alter_configs(
        [ConfigResource(
            ConfigResource.Type.TOPIC,
            topic,
            incremental_configs=[ConfigEntry("retention.ms", "5400000", incremental_operation=AlterConfigOpType.SET)],
        )]
    )
    wait_all(altered, "incremental_alter_configs")
    configs = list(adm.describe_configs([resource]).values())[0].result(timeout=30)
    if configs["retention.ms"].value != "5400000":
        raise SystemExit(f"describe_configs: retention.ms {configs['retention.ms'].value}")

    wait_all(adm.create_partitions([NewPartitions(topic, 4)]), "create_partitions")
    parts = [TopicPartition(topic, p) for p in range(3)]
    ends = adm.list_offsets({tp: OffsetSpec.latest() for tp in parts}, isolation_level=IsolationLevel.READ_COMMITTED)
    end = {tp.partition: f.result(timeout=30).offset for tp, f in ends.items()}
    if sum(end.values()) != PER_TOPIC:
        raise SystemExit(f"list_offsets latest: {end}")
    by_time = adm.list_offsets({TopicPartition(topic, 0): OffsetSpec.for_timestamp(0)})
    if list(by_time.values())[0].result(timeout=30).offset != 0:
        raise SystemExit("list_offsets by time 0 is not offset 0")
    max_ts = adm.list_offsets({TopicPartition(topic, 0): OffsetSpec.max_timestamp()})
    if not 0 <= list(max_ts.values())[0].result(timeout=30).offset < end[0]:
        raise SystemExit("list_offsets max_timestamp out of range")

    deleted = adm.delete_records([TopicPartition(topic, 0, 5)])
    low = list(deleted.values())[0].result(timeout=30)
    if low.low_watermark != 5:
        raise SystemExit(f"delete_records: low watermark {low.low_watermark}")

    # A group's offsets: committed, listed, altered, listed again, deleted.
    group = "ck-admin-group"
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group, "enable.auto.commit": False})
    consumer.commit(offsets=[TopicPartition(topic, 1, 7)], asynchronous=False)
    consumer.close()
    request = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 1)])]
    offsets = list(adm.list_consumer_group_offsets(request).values())[0].result(timeout=30)
    if offsets.topic_partitions[0].offset != 7:
        raise SystemExit(f"list_consumer_group_offsets: {offsets.topic_partitions}")
    moved = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 1, 3)])]
    wait_all(adm.alter_consumer_group_offsets(moved), "alter_consumer_group_offsets")
    offsets = list(adm.list_consumer_group_offsets(request).values())[0].result(timeout=30)
    if offsets.topic_partitions[0].offset != 3:
        raise SystemExit(f"after alter_consumer_group_offsets: {offsets.topic_partitions}")
    groups = adm.list_consumer_groups().result(timeout=30)
    if group not in [g.group_id for g in groups.valid]:
        raise SystemExit(f"list_consumer_groups: {groups.valid}")
    described = adm.describe_consumer_groups([group])[group].result(timeout=30)
    if described.group_id != group:
        raise SystemExit(f"describe_consumer_groups: {described}")
    wait_all(adm.delete_consumer_groups([group]), "delete_consumer_groups")
    wait_all(adm.delete_topics([doomed]), "delete_topics")
    if doomed in adm.list_topics(timeout=30).topics:
        raise SystemExit("a deleted topic is still listed")
    print("admin: ok")


def transactions():
    source, sink = "ck-txn-in", "ck-txn-out"
    create([source, sink], partitions=1)
    want = values(source)
    produce(source, "lz4", want)
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "transactional.id": "ck-txn"})
    producer.init_transactions(30)
    consumer = Consumer({
        "bootstrap.servers": BOOTSTRAP,
        "group.id": "ck-txn-group",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
    })
    consumer.subscribe([source])
    n = 0
    # Half the records copied in a committed transaction, then an aborted
    # transaction copying the rest, then the rest again, committed.
    for commit, upto in ((True, PER_TOPIC // 2), (False, PER_TOPIC), (True, PER_TOPIC)):
        producer.begin_transaction()
        while n < upto:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                raise SystemExit(f"transactions: {msg.error()}")
            producer.produce(sink, key=msg.key(), value=msg.value())
            n += 1
        producer.send_offsets_to_transaction(
            consumer.position(consumer.assignment()), consumer.consumer_group_metadata(), 30
        )
        if commit:
            producer.commit_transaction(30)
        else:
            producer.abort_transaction(30)
            n = PER_TOPIC // 2
            consumer.seek(TopicPartition(source, 0, n))
    consumer.close()
    reader = Consumer({
        "bootstrap.servers": BOOTSTRAP,
        "group.id": "ck-txn-reader",
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "enable.partition.eof": True,
    })
    reader.subscribe([sink])
    got = {}
    while True:
        msg = reader.poll(5.0)
        if msg is None:
            raise SystemExit(f"transactions: read {len(got)}, no end of partition")
        if msg.error():
            if msg.error().code() == -191:  # _PARTITION_EOF
                break
            raise SystemExit(f"transactions: {msg.error()}")
        if msg.key().decode() in got:
            raise SystemExit(f"transactions: {msg.key()} read twice")
        got[msg.key().decode()] = msg.value().decode()
    reader.close()
    if got != want:
        raise SystemExit(f"transactions: read {len(got)} of {len(want)}")
    committed = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "ck-txn-group"}).committed(
        [TopicPartition(source, 0)], timeout=30
    )
    if committed[0].offset != PER_TOPIC:
        raise SystemExit(f"transactions: the group's offset {committed[0].offset}")
    print("transactions: ok")


{"produce-consume": produce_consume, "admin": admin_calls, "transactions": transactions}[sys.argv[2]]()
