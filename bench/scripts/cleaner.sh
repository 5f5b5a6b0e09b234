#!/usr/bin/env bash
# The log cleaner's cost to producers: the same keyed workload on a
# compacted topic (10,000 keys, 1 KiB, 5,000 messages/s, acks=all, 1 MiB
# segments, min.cleanable.dirty.ratio 0.1) against two fresh release
# brokers in turn, one cleaning (log-cleaner-backoff-ms = 1000) and one
# whose cleaner never wakes (the reference, same run); then the cleaning
# broker's own account of its passes (bytes read, time, MB/s).
# Usage: [IO_LIMIT=BYTES_PER_SECOND] bench/scripts/cleaner.sh [DURATION_SECONDS]
# (IO_LIMIT: the cleaning broker's log-cleaner-io-max-bytes-per-second)
set -euo pipefail
duration=${1:-60}
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$root/target/release/shardlog
cargo build --release --manifest-path "$root/Cargo.toml" >/dev/null 2>&1
work=$(mktemp -d /tmp/shardlog-cleaner.XXXXXX)
port=$((20000 + RANDOM % 20000))
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT

cat > "$work/compacted.toml" <<TOML
name = "compacted-keyed"
partitions = 1
keys = { uniform = 10000 }
message-size = 1024
rate = 5000
linger-ms = 0
acks = "all"
warmup-seconds = 10
duration-seconds = $duration
[topic-config]
"cleanup.policy" = "compact"
"segment.bytes" = "1048576"
"min.cleanable.dirty.ratio" = "0.1"
TOML

start() { # name port backoff-ms
  mkdir -p "$work/$1"
  printf 'log-cleaner-backoff-ms = %s\nlog-cleaner-io-max-bytes-per-second = %s\n' "$3" "${4:-0}" \
    > "$work/$1/shardlog.toml"
  RUST_LOG=info "$bin" serve --listen "127.0.0.1:$2" --data-dir "$work/$1/data" \
    --config "$work/$1/shardlog.toml" 2> "$work/$1/broker.log" &
  pids+=($!)
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && break; sleep 0.1; done
}

echo "date: $(date -u +%FT%TZ)  host: $(nproc) vCPU $(lscpu | sed -n 's/Model name: *//p')  kernel $(uname -r)"
echo "loadavg before: $(cat /proc/loadavg)"
start cleaning "$port" 1000 "${IO_LIMIT:-0}"
on=${pids[-1]}
start idle $((port + 1)) 3600000
off=${pids[-1]}
"$bin" bench compare --workload "$work/compacted.toml" \
  "cleaning=127.0.0.1:$port@$on" "no-cleaner=127.0.0.1:$((port + 1))@$off"
echo "loadavg after: $(cat /proc/loadavg)"
echo "the cleaning broker's passes over the benchmark topic:"
grep 'log cleaned' "$work/cleaning/broker.log" | grep -v '__' | python3 -c '
import re, sys
passes = mapped = rewritten = removed = 0
ms = 0.0
for line in sys.stdin:
    f = dict(re.findall(r"(\w+)=([0-9.]+)", line))
    passes += 1
    mapped += int(f["bytes_mapped"]); rewritten += int(f["bytes_before"])
    removed += int(f["bytes_before"]) - int(f["bytes_after"]); ms += float(f["ms"])
read = mapped + rewritten
print(f"{passes} passes: read {read/1e6:.1f} MB (mapped {mapped/1e6:.1f}, rewritten {rewritten/1e6:.1f}), "
      f"removed {removed/1e6:.1f} MB, {ms/1e3:.2f} s in passes: {read/1e6/max(ms/1e3,1e-9):.0f} MB/s")
'
