#!/usr/bin/env bash
# Bulk produce, then a consumer that reads the whole backlog back, with
# librdkafka's own rdkafka_performance on both sides (issue 12).
#
#   bench/scripts/backlog.sh RECORDS BROKER...
#
# Each BROKER is a shardlog binary, or `kafka` for Apache Kafka by
# bench/scripts/kafka-reference.sh; each gets a fresh data directory and
# group rebalances without delay. For each: RECORDS records of 1 KiB go to
# a topic of 8 partitions (acks=all, linger.ms=5, batch.size=1000000),
# then a consumer group reads them all from the beginning, twice (two
# groups). Prints the client's own throughput (from its first message to
# its last) and the broker's CPU seconds per GB (from /proc, over the
# whole phase) for each phase. shardlog's defaults keep a few MiB per
# partition in memory, so its consumers read the disk; Kafka's read its
# page cache, which holds what was just written.
#
# rdkafka_performance is built once from the librdkafka sources the
# rdkafka-sys crate carries (a release build of the workspace compiled
# them) into $RDKAFKA_PERFORMANCE (default target/rdkafka_performance).
set -euo pipefail
records=${1:?usage: backlog.sh RECORDS BROKER...}
shift
[ $# -gt 0 ] || set -- target/release/shardlog
port=${PORT:-19392}
perf_bin=${RDKAFKA_PERFORMANCE:-target/rdkafka_performance}
scripts=$(cd "$(dirname "$0")" && pwd)

if [ ! -x "$perf_bin" ]; then
    out=$(dirname "$(find target/release/build -path '*rdkafka-sys-*/out/src/librdkafka.a' | head -1)")/..
    zstd=$(find target/release/build -name libzstd.a | head -1)
    [ -f "$out/examples/rdkafka_performance.c" ] || {
        echo "backlog.sh: build the workspace first (cargo build --release)" >&2
        exit 1
    }
    gcc -O2 -I"$out/src" "$out/examples/rdkafka_performance.c" -o "$perf_bin" \
        "$out/src/librdkafka.a" ${zstd:+"$zstd"} -lm -lssl -lcrypto -lz -ldl -lpthread -lrt
fi

dir=
pid=
kind=
stop() {
    if [ "$kind" = kafka ]; then
        "$scripts/kafka-reference.sh" stop "$dir" >/dev/null 2>&1 || true
    elif [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
        rm -rf "$dir"
    fi
    pid=
}
trap stop EXIT

gb=$(echo "$records * 1024 / 10^9" | bc -l)
tick=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
# PHASE COMMAND...: runs the client, prints its rate and the broker's CPU.
measure() {
    local phase=$1 before rate
    shift
    before=$(cpu)
    "$@" > "$dir.client" 2>&1
    rate=$(grep -o '[0-9.]* MB/s' "$dir.client" | tail -1)
    printf '  %-10s %s, broker %.3f CPU-s/GB\n' "$phase" "$rate" \
        "$(echo "($(cpu) - $before) / $tick / $gb" | bc -l)"
}

for broker in "$@"; do
    dir=$(mktemp -u /tmp/backlog.XXXXXX)
    if [ "$broker" = kafka ]; then
        kind=kafka
        pid=$("$scripts/kafka-reference.sh" start "$port" "$dir" group.initial.rebalance.delay.ms=0 | tail -1)
        libs=${KAFKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shardlog/kafka-${KAFKA_VERSION:-4.4.0}}/libs
        java -cp "$libs/*" org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$port" \
            --create --topic backlog --partitions 8 --replication-factor 1 >/dev/null 2>&1
    else
        kind=shardlog
        mkdir -p "$dir"
        printf 'group-initial-rebalance-delay-ms = 0\n' > "$dir.toml"
        "$broker" serve --listen "127.0.0.1:$port" --data-dir "$dir/data" --config "$dir.toml" \
            > "$dir.log" 2>&1 &
        pid=$!
        for _ in $(seq 100); do
            "$broker" topic create backlog --partitions 8 --bootstrap "127.0.0.1:$port" \
                >/dev/null 2>&1 && break
            sleep 0.1
        done
    fi
    echo "$broker ($records records of 1 KiB):"
    measure produce "$perf_bin" -P -t backlog -s 1024 -c "$records" -a -1 -b "127.0.0.1:$port" -q \
        -X linger.ms=5 -X batch.size=1000000 -X queue.buffering.max.kbytes=1048576 \
        -X queue.buffering.max.messages=1000000
    for group in first second; do
        measure "consume" "$perf_bin" -G "backlog-$group" -t backlog -c "$records" \
            -b "127.0.0.1:$port" -q -X auto.offset.reset=earliest -X fetch.max.bytes=52428800
    done
    stop
    rm -f "$dir.toml" "$dir.log" "$dir.client"
done
