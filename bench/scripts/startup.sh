#!/usr/bin/env bash
# Start and stop times of a broker holding many partitions (issue 19).
#
#   bench/scripts/startup.sh PARTITIONS [ROUNDS] [BINARY...]
#
# For each binary (default: target/release/shardlog): a fresh data
# directory, a topic of PARTITIONS partitions (created in topics of at most
# 10,000), a first stop, then ROUNDS (default 3) restarts: the time from
# the process start until every shard logged "shard ready" (its partitions
# open and its listeners serving), with the broker's RSS then, and from
# SIGTERM to the exit. Prints one line per round; the data directories are
# removed.
set -euo pipefail

partitions=${1:?usage: startup.sh PARTITIONS [ROUNDS] [BINARY...]}
rounds=${2:-3}
shift $(($# < 2 ? $# : 2))
binaries=("$@")
[ ${#binaries[@]} -gt 0 ] || binaries=(target/release/shardlog)
port=${PORT:-19192}
shards=${SHARDS:-2}

now() { date +%s.%N; }
# shellcheck source=lib/broker.sh
. "$(dirname "$0")/lib/broker.sh"

# Starts the broker in the background; sets $pid, waits for every
# shard's "shard ready" and sets $took to the seconds it took.
start() {
    local bin=$1 dir=$2 t0
    t0=$(now)
    broker_start "$bin" "$dir" "$port" "$shards"
    took=$(echo "$(now) - $t0" | bc)
}

# Stops the broker; sets $took to the seconds it took.
stop() {
    local t0
    t0=$(now)
    broker_stop
    took=$(echo "$(now) - $t0" | bc)
}

for bin in "${binaries[@]}"; do
    dir=$(mktemp -d /tmp/startup.XXXXXX)
    trap 'kill -TERM "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
    start "$bin" "$dir"
    left=$partitions
    topic=0
    while [ "$left" -gt 0 ]; do
        n=$((left > 10000 ? 10000 : left))
        "$bin" topic create --bootstrap "127.0.0.1:$port" -p "$n" "many-$topic" >/dev/null
        left=$((left - n))
        topic=$((topic + 1))
    done
    stop
    echo "$bin: $partitions partitions, created; first stop ${took}s"
    for round in $(seq 1 "$rounds"); do
        start "$bin" "$dir"
        started=$took
        rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
        stop
        echo "$bin: $partitions partitions, round $round: start ${started}s, RSS $((rss / 1024)) MiB, stop ${took}s"
    done
    rm -rf "$dir"
    trap - EXIT
done
