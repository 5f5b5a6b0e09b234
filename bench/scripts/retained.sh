#!/usr/bin/env bash
# Broker memory and open files against the data it retains (issue 19).
#
#   bench/scripts/retained.sh MIB PARTITIONS RECORDS_PER_BATCH [BINARY[:CONFIG]...]
#
# Creates a topic of PARTITIONS partitions through the first binary, fills
# each partition with MIB/PARTITIONS MiB of 1 KiB records in batches of
# RECORDS_PER_BATCH (engine example fill_log; SEGMENT_BYTES sets the
# segment size, default 1 GiB), then for each binary (an optional
# `:CONFIG` names a config file for it) starts the broker on that data and
# reports its RSS and open files once its shards are ready, and again after
# a client looked up one timestamp in every segment of every partition and
# fetched there (`shardlog consume --from @T -n 1`, run against each
# segment: every index is needed once; TOUCH_PARTITIONS=N only in the first
# N partitions). The data directory is removed.
set -euo pipefail

mib=${1:?usage: retained.sh MIB PARTITIONS RECORDS_PER_BATCH [BINARY[:CONFIG]...]}
partitions=${2:?partitions}
per_batch=${3:?records per batch}
shift 3
binaries=("$@")
[ ${#binaries[@]} -gt 0 ] || binaries=(target/release/shardlog)
port=${PORT:-19292}
segment_bytes=${SEGMENT_BYTES:-1073741824}
topic=retained
# shellcheck source=lib/broker.sh
. "$(dirname "$0")/lib/broker.sh"

dir=$(mktemp -d /tmp/retained.XXXXXX)
pid=
trap '[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; rm -rf "$dir"' EXIT

# BINARY CONFIG: a broker of 2 shards.
start() {
    local bin=$1 config=$2
    local extra=()
    [ -n "$config" ] && extra=(--config "$config")
    broker_start "$bin" "$dir" "$port" 2 "${extra[@]}"
}

stop() { broker_stop; }

usage() {
    echo "RSS $(($(awk '/VmRSS/ {print $2}' "/proc/$pid/status") / 1024)) MiB, $(ls "/proc/$pid/fd" | wc -l) open files"
}

first=${binaries[0]%%:*}
start "$first" ""
"$first" topic create --bootstrap "127.0.0.1:$port" -p "$partitions" \
    -c "segment.bytes=$segment_bytes" "$topic" >/dev/null
stop
per_partition=$((mib / partitions))
fill_dirs=()
for p in $(seq 0 $((partitions - 1))); do fill_dirs+=("$dir/data/$topic-$p"); done
SEGMENT_BYTES=$segment_bytes target/release/examples/fill_log "$per_partition" "$per_batch" \
    "${fill_dirs[@]}" | tail -1
du -sh "$dir/data" | cut -f1 | sed 's/^/retained: /'

# Timestamps: batch i of a partition is at 1_700_000_000_000 + i + 1 ms; one
# lookup per segment, at its middle.
batch_bytes=$(( (per_batch * 1070) + 61 ))
batches_per_segment=$((segment_bytes / batch_bytes))
batches=$(((per_partition << 20) / batch_bytes))
for spec in "${binaries[@]}"; do
    bin=${spec%%:*}
    config=${spec#"$bin"}
    config=${config#:}
    start "$bin" "$config"
    echo "$spec: ready: $(usage)"
    t0=$(date +%s.%N)
    for p in $(seq 0 $((${TOUCH_PARTITIONS:-$partitions} - 1))); do
        for ((b = batches_per_segment / 2; b < batches; b += batches_per_segment)); do
            "$bin" consume --bootstrap "127.0.0.1:$port" -p "$p" -n 1 \
                --from "@$((1700000000001 + b))" "$topic" >/dev/null
        done
    done
    echo "$spec: every segment read once ($(echo "$(date +%s.%N) - $t0" | bc) s): $(usage)"
    stop
done
