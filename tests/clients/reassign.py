"""kafka-python against a shardlog cluster: partition reassignments
(AlterPartitionReassignments, ListPartitionReassignments).
Usage: reassign.py BOOTSTRAP TOPIC move|cancel

move: TOPIC has partition 0 on brokers [0, 1] and partition 1 on [1, 2].
Partition 0 moves to [2, 1] (2 added, 0 removed) and partition 1 to [0]
(one replica: 0 added, 1 and 2 removed). Bad requests are refused per
partition (an unknown partition, a broker that does not exist, nothing to
cancel). Both moves end by themselves once the new replicas caught up:
the list of reassignments in progress empties and the topic's replicas
are the targets.

cancel: broker 0 is down. Partition 0 ([2, 1]) is asked to move to
[2, 1, 0]: it stays in progress (0 cannot catch up) and is listed with 0
being added, until it is cancelled: then its replicas are [2, 1] again."""
import sys
import time

from kafka import KafkaAdminClient, TopicPartition
from kafka.errors import (
    InvalidReplicationAssignmentError,
    NoReassignmentInProgressError,
    UnknownTopicOrPartitionError,
)

bootstrap, topic, mode = sys.argv[1], sys.argv[2], sys.argv[3]
admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)


def replicas():
    (described,) = admin.describe_topics([topic])
    return {p["partition_index"]: (p["replica_nodes"], sorted(p["isr_nodes"]))
            for p in described["partitions"]}


def wait_until(what, check, seconds=60):
    deadline = time.time() + seconds
    while True:
        seen = check()
        if seen is True:
            return
        assert time.time() < deadline, f"{what}: {seen}"
        time.sleep(0.2)


def settled(expected):
    """The metadata (which reaches brokers in turn) shows `expected`
    replicas per partition, every one in sync, nothing in progress."""
    def check():
        ongoing = admin.list_partition_reassignments()
        now = replicas()
        done = not ongoing and all(now[p] == (r, sorted(r)) for p, r in expected.items())
        return True if done else (ongoing, now)
    return check


if mode == "move":
    assert admin.list_partition_reassignments() == {}, "nothing moves yet"
    assert replicas() == {0: ([0, 1], [0, 1]), 1: ([1, 2], [1, 2])}, replicas()
    refused = admin.alter_partition_reassignments({
        TopicPartition(topic, 7): [0, 1],
        p1: [1, 9],
        p0: None,
    })
    assert refused == {
        TopicPartition(topic, 7): UnknownTopicOrPartitionError,
        p1: InvalidReplicationAssignmentError,
        p0: NoReassignmentInProgressError,
    }, refused
    accepted = admin.alter_partition_reassignments({p0: [2, 1], p1: [0]})
    assert accepted == {p0: None, p1: None}, accepted
    wait_until("the moves end", settled({0: [2, 1], 1: [0]}))
    print(f"moved {topic}: {replicas()}")
elif mode == "cancel":
    accepted = admin.alter_partition_reassignments({p0: [2, 1, 0]})
    assert accepted == {p0: None}, accepted
    ongoing = admin.list_partition_reassignments()
    assert ongoing == {p0: {"replicas": [2, 1, 0], "adding_replicas": [0],
                            "removing_replicas": []}}, ongoing
    # Listed for the asked partition only when asked by partition.
    assert admin.list_partition_reassignments([p1]) == {}
    assert admin.list_partition_reassignments({topic: [0]}) == ongoing
    time.sleep(1)
    assert admin.list_partition_reassignments() == ongoing, "0 is down: still moving"
    cancelled = admin.alter_partition_reassignments({p0: None})
    assert cancelled == {p0: None}, cancelled
    wait_until("the cancellation", settled({0: [2, 1]}))
    print(f"cancelled the move of {topic}-0: {replicas()}")
else:
    sys.exit(f"unknown mode {mode}")
