#!/usr/bin/env bash
# shardlog as a 3-broker cluster on this machine (issue 13): produce latency
# and throughput with replication factor 3 at acks=all and acks=1, and
# replication factor 1 beside them, next to the references measured in the
# same run (loopback TCP round trip, disk write+fdatasync); then the stall
# a producer sees when the leader of its partition is SIGKILLed and when it
# is stopped with SIGTERM (controlled shutdown).
# Usage: bench/scripts/cluster.sh [DURATION_SECONDS [WORKLOAD [FAILOVERS]]]
# (default: 20 s, latency, 3 failovers of each kind). FAILOVERS_ONLY=1
# skips the load runs. RATE=N sets the messages a second (the workload's
# otherwise); ROUNDS=N runs the three loads N times in turn (default 1). INTERNAL_SSL=1 puts the brokers' internal links
# (quorum and replication) under mutual TLS (`internal-ssl`, certificates
# made here with openssl), the Kafka listeners staying PLAINTEXT. Needs fio (apt-get install fio) and the Python
# clients in .venv (scripts/test installs them).
set -euo pipefail
duration=${1:-20}
workload=${2:-latency}
failovers=${3:-3}
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$root/target/release/shardlog
python=$root/.venv/bin/python
cargo build --release --manifest-path "$root/Cargo.toml" >/dev/null 2>&1
work=$(mktemp -d /tmp/shardlog-cluster.XXXXXX)
base=$((20000 + RANDOM % 20000))
voters="0@127.0.0.1:$((base + 10)),1@127.0.0.1:$((base + 11)),2@127.0.0.1:$((base + 12))"
bootstrap="127.0.0.1:$base,127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2))"
declare -A pids
cleanup() {
  for id in "${!pids[@]}"; do kill -9 "${pids[$id]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

if [[ -n ${INTERNAL_SSL:-} ]]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-ca \
    -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=broker \
    -keyout "$work/broker.key" -out "$work/broker.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >"$work/ext"
  openssl x509 -req -in "$work/broker.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
    -CAcreateserial -days 2 -extfile "$work/ext" -out "$work/broker.pem" 2>/dev/null
fi

start_broker() {
  local id=$1
  local listen=(--listen 127.0.0.1:$((base + id)))
  if [[ -n ${INTERNAL_SSL:-} ]]; then
    cat >"$work/broker-$id.toml" <<TOML
listeners = ["PLAINTEXT://127.0.0.1:$((base + id))"]
ssl-certificate = "$work/broker.pem"
ssl-key = "$work/broker.key"
ssl-ca = "$work/ca.pem"
internal-ssl = true
TOML
    listen=(--config "$work/broker-$id.toml")
  fi
  "$bin" serve --node-id "$id" --shards 1 --data-dir "$work/data-$id" \
    "${listen[@]}" --voters "$voters" 2>>"$work/broker-$id.log" &
  pids[$id]=$!
  echo "${pids[$id]}" >"$work/$id"
}

# Waits until every partition of $1 has a leader and $2 replicas in sync.
wait_in_sync() {
  "$python" - "$bootstrap" "$1" "$2" <<'PY'
import sys, time
from kafka import KafkaAdminClient
bootstrap, topic, want = sys.argv[1], sys.argv[2], int(sys.argv[3])
deadline = time.time() + 120
while True:
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        (t,) = admin.describe_topics([topic])
        admin.close()
        if t["partitions"] and all(p["leader_id"] >= 0 and len(p["isr_nodes"]) >= want for p in t["partitions"]):
            break
    except Exception:
        pass
    assert time.time() < deadline, f"{topic}: not {want} in sync"
    time.sleep(0.5)
PY
}

# A process that exited (a zombie until reaped) is not alive.
alive() {
  [[ -e /proc/$1 ]] && [[ $(awk '{print $3}' "/proc/$1/stat") != Z ]]
}

cpu_seconds() {
  local total=0
  for id in 0 1 2; do
    total=$(awk -v t="$total" '{printf "%.2f", t + ($14+$15)/100}' "/proc/${pids[$id]}/stat")
  done
  echo "$total"
}

echo "date: $(date -u +%FT%TZ)  host: $(nproc) vCPU $(lscpu | sed -n 's/Model name: *//p')  kernel $(uname -r)"
echo "loadavg before: $(cat /proc/loadavg)"
"$python" - <<'PY'
import socket, threading, time
server = socket.socket(); server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", 0)); server.listen(1)
def echo():
    conn, _ = server.accept(); conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while (data := conn.recv(64)):
        conn.sendall(data)
threading.Thread(target=echo, daemon=True).start()
client = socket.create_connection(server.getsockname()); client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
rtts = []
for _ in range(20000):
    t = time.perf_counter_ns(); client.sendall(b"x" * 64); client.recv(64); rtts.append(time.perf_counter_ns() - t)
rtts.sort()
print("loopback TCP round trip (64 B, Python, 20,000): p50 %.0f us p99 %.0f us" % (rtts[len(rtts) // 2] / 1e3, rtts[len(rtts) * 99 // 100] / 1e3))
PY
fio --name=syncw --directory="$work" --ioengine=sync --direct=1 --rw=write --bs=4k --size=64M --fdatasync=1 \
    --runtime=10 --time_based --output-format=json 2>/dev/null | python3 -c \
  "import json,sys; w=json.load(sys.stdin)['jobs'][0]; s=w['sync']['lat_ns']['percentile']; print('disk write+fdatasync 4 KiB (fio): p50 %.0f us p99 %.0f us' % (s['50.000000']/1e3, s['99.000000']/1e3))"
rm -f "$work"/syncw*

for id in 0 1 2; do start_broker "$id"; done
sleep 3

if [[ -z ${FAILOVERS_ONLY:-} ]]; then
  runs=()
  for _ in $(seq "${ROUNDS:-1}"); do runs+=("3 all" "3 1" "1 all"); done
  for run in "${runs[@]}"; do
    set -- $run
    out=$root/bench-results/cluster-$workload-rf$1-acks$2
    echo "--- shardlog bench run --workload $workload --replication-factor $1 --acks $2 --duration $duration"
    before=$(cpu_seconds)
    "$bin" bench run --bootstrap "$bootstrap" --name "shardlog-3-rf$1-acks$2" \
      --workload "$workload" --replication-factor "$1" --acks "$2" --duration "$duration" \
      ${RATE:+--rate "$RATE"} --out "$out" 2>"$work/bench.log" || { cat "$work/bench.log"; exit 1; }
    echo "brokers' CPU seconds (user+sys, all three): $(awk -v a="$before" -v b="$(cpu_seconds)" 'BEGIN{printf "%.1f", b - a}')"
  done
fi

"$python" - "$bootstrap" <<'PY'
import sys
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
admin = KafkaAdminClient(bootstrap_servers=sys.argv[1])
admin.create_topics([NewTopic("failover", num_partitions=1, replication_factor=3,
                              topic_configs={"min.insync.replicas": "2"})])
PY
for kind in KILL TERM; do
  for _ in $(seq "$failovers"); do
    wait_in_sync failover 3
    "$python" "$root/bench/scripts/failover.py" "$bootstrap" failover "$work" "$kind"
    for id in 0 1 2; do
      if ! alive "${pids[$id]}"; then wait "${pids[$id]}" 2>/dev/null || true; start_broker "$id"; fi
    done
  done
done
echo "loadavg after: $(cat /proc/loadavg)"
