"""kafka-python against a shardlog cluster: preferred-leader election
(ElectLeaders). Usage: elect_leaders.py BOOTSTRAP TOPIC

Asks for the preferred leaders of TOPIC's partitions (some led elsewhere
after a broker's restart): each answers NONE or ELECTION_NOT_NEEDED, and
every partition is then led by the first of its replicas. Asking again
needs no election; an unknown partition is UNKNOWN_TOPIC_OR_PARTITION; an
unclean election of led partitions is not needed."""
import sys
import time

from kafka import KafkaAdminClient

bootstrap, topic = sys.argv[1], sys.argv[2]
admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)

PREFERRED, UNCLEAN = 0, 1
NONE, UNKNOWN_TOPIC_OR_PARTITION, ELECTION_NOT_NEEDED = 0, 3, 84


def codes(response):
    return {
        (result.topic, p.partition_id): p.error_code
        for result in response.replica_election_results
        for p in result.partition_result
    }


def partitions():
    (described,) = admin.describe_topics([topic])
    return {p["partition_index"]: p for p in described["partitions"]}


before = partitions()
misled = sorted(i for i, p in before.items() if p["leader_id"] != p["replica_nodes"][0])
assert misled, f"every partition of {topic} is led by its preferred replica already: {before}"

first = codes(admin.elect_leaders(PREFERRED, {topic: sorted(before)}, raise_errors=False))
for i in before:
    expected = NONE if i in misled else ELECTION_NOT_NEEDED
    assert first[(topic, i)] == expected, f"partition {i}: {first[(topic, i)]}, wanted {expected}: {first}"

# Metadata reaches every broker in turn.
deadline = time.time() + 30
while True:
    after = partitions()
    if all(p["leader_id"] == p["replica_nodes"][0] for p in after.values()):
        break
    assert time.time() < deadline, f"not led by the preferred replicas: {after}"
    time.sleep(0.1)

again = codes(admin.elect_leaders(PREFERRED, {topic: sorted(before)}, raise_errors=False))
assert set(again.values()) == {ELECTION_NOT_NEEDED}, again
unclean = codes(admin.elect_leaders(UNCLEAN, {topic: sorted(before)}, raise_errors=False))
assert set(unclean.values()) == {ELECTION_NOT_NEEDED}, unclean
unknown = codes(admin.elect_leaders(PREFERRED, {topic: [999], "no-such-topic": [0]}, raise_errors=False))
assert unknown == {(topic, 999): UNKNOWN_TOPIC_OR_PARTITION,
                   ("no-such-topic", 0): UNKNOWN_TOPIC_OR_PARTITION}, unknown
print(f"elected the preferred leaders of {topic} partitions {misled}")
