#!/usr/bin/env bash
# Producers and consumers over many partitions, with more idle around them
# (issue 19: segment files under the shard's bound).
#
#   bench/scripts/partitions.sh TOTAL WRITTEN [BINARY[:CONFIG]...]
#
# For each binary (an optional `:CONFIG` names a config file for it): a
# fresh broker (2 shards), TOTAL - WRITTEN idle partitions created in
# topics of at most 10,000, a restart (every partition opened by the
# broker, none used), then `shardlog bench run` of the `latency` preset
# over a topic of WRITTEN partitions (RATE msgs/s of 1 KiB, default 5000,
# DURATION s, default 20, librdkafka, acks=all). Prints the broker's open
# files after the restart and after the run, the segment files it closed
# and reopened (its metrics), and the bench's table. The data directories
# are removed.
set -euo pipefail

total=${1:?usage: partitions.sh TOTAL WRITTEN [BINARY[:CONFIG]...]}
written=${2:?written}
shift 2
[ $# -gt 0 ] || set -- target/release/shardlog
port=${PORT:-19492}
http=${HTTP_PORT:-19493}
rate=${RATE:-5000}
duration=${DURATION:-20}
bench=target/release/shardlog
# shellcheck source=lib/broker.sh
. "$(dirname "$0")/lib/broker.sh"

dir=
pid=
cleanup() {
    if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; fi
    if [ -n "$dir" ]; then rm -rf "$dir"; fi
    return 0
}
trap cleanup EXIT

# BINARY CONFIG: a broker of 2 shards with the HTTP listener (metrics).
start() {
    local bin=$1 config=$2
    local extra=()
    [ -n "$config" ] && extra=(--config "$config")
    broker_start "$bin" "$dir" "$port" 2 --http-listen "127.0.0.1:$http" "${extra[@]}"
}

stop() { broker_stop; }

open_files() { ls "/proc/$pid/fd" | wc -l; }

# The sum over shards of a counter or gauge of the broker's metrics.
metric() {
    curl -s "http://127.0.0.1:$http/metrics" |
        awk -v f="$1" 'index($0, f "{") == 1 { s += $NF } END { print s + 0 }'
}

for spec in "$@"; do
    bin=${spec%%:*}
    config=${spec#"$bin"}
    config=${config#:}
    dir=$(mktemp -d /tmp/partitions.XXXXXX)
    start "$bin" "$config"
    left=$((total - written))
    topic=0
    while [ "$left" -gt 0 ]; do
        n=$((left > 10000 ? 10000 : left))
        "$bin" topic create --bootstrap "127.0.0.1:$port" -p "$n" "idle-$topic" >/dev/null
        left=$((left - n))
        topic=$((topic + 1))
    done
    stop
    start "$bin" "$config"
    echo "$spec: $total partitions ($written written): after the restart $(open_files) open files"
    "$bench" bench run --bootstrap "127.0.0.1:$port" --name "$(basename "$bin")" \
        --broker-pid "$pid" --workload latency --partitions "$written" --rate "$rate" \
        --duration "$duration" --warmup 3 --out "$dir/results" 2>&1 | grep -v "^\s*$"
    echo "$spec: after the run $(open_files) open files;" \
        "segment files open $(metric shardlog_shard_segment_files_open)," \
        "reopened $(metric shardlog_shard_segment_file_reopens_total);" \
        "errors logged $(grep -c ERROR "$dir/broker.log" || true)"
    stop
    rm -rf "$dir"
    dir=
done
