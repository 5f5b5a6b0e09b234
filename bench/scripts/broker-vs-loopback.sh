#!/usr/bin/env bash
# shardlog under librdkafka load next to this machine's limits, in one run:
# loopback TCP (iperf3) and durable small writes (fio write+fdatasync),
# then `shardlog bench run` with the throughput and latency workloads
# against a fresh release broker, then iperf3 again (the machine is shared:
# the two loopback figures bracket the broker's).
# Usage: bench/scripts/broker-vs-loopback.sh [DURATION_SECONDS [WORKLOAD...]]
# (workloads: presets or files; default: latency throughput). Each run's
# result.json and report.html go to bench-results/<workload>-<driver>/. DRIVER=native
# runs the clients on shardlog's own client instead of librdkafka.
# Needs iperf3 and fio (apt-get install iperf3 fio).
set -euo pipefail
duration=${1:-20}
shift || true
workloads=("${@:-latency}")
[[ $# -eq 0 ]] && workloads=(latency throughput)
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$root/target/release/shardlog
cargo build --release --manifest-path "$root/Cargo.toml" >/dev/null 2>&1
work=$(mktemp -d /tmp/shardlog-bench.XXXXXX)
port=$((20000 + RANDOM % 20000))
cleanup() {
  [[ -n ${broker:-} ]] && kill "$broker" 2>/dev/null && wait "$broker" 2>/dev/null
  [[ -n ${iperf:-} ]] && kill "$iperf" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

loopback() {
  iperf3 -s -p $((port + 1)) -1 >/dev/null 2>&1 & iperf=$!
  sleep 0.5
  iperf3 -c 127.0.0.1 -p $((port + 1)) -t 10 -J | python3 -c \
    "import json,sys; e=json.load(sys.stdin)['end']['sum_received']; print('loopback TCP (iperf3, 1 stream, 10 s): %.0f MB/s' % (e['bits_per_second']/8e6))"
  wait $iperf 2>/dev/null || true; iperf=
}

echo "date: $(date -u +%FT%TZ)  host: $(nproc) vCPU $(lscpu | sed -n 's/Model name: *//p')  kernel $(uname -r)"
echo "loadavg before: $(cat /proc/loadavg)"
loopback
fio --name=syncw --directory="$work" --ioengine=sync --direct=1 --rw=write --bs=4k --size=64M --fdatasync=1 \
    --runtime=10 --time_based --output-format=json 2>/dev/null | python3 -c \
  "import json,sys; w=json.load(sys.stdin)['jobs'][0]; s=w['sync']['lat_ns']['percentile']; print('disk write+fdatasync 4 KiB (fio): p50 %.0f us p99 %.0f us' % (s['50.000000']/1e3, s['99.000000']/1e3))"
rm -f "$work"/syncw*

"$bin" serve --data-dir "$work/data" --listen 127.0.0.1:$port 2>"$work/broker.log" & broker=$!
sleep 1
for workload in "${workloads[@]}"; do
  out=$root/bench-results/$(basename "$workload" .toml)-${DRIVER:-librdkafka}
  echo "--- shardlog bench run --workload $workload --duration $duration --out $out"
  "$bin" bench run --bootstrap 127.0.0.1:$port --name shardlog --broker-pid "$broker" \
    --driver "${DRIVER:-librdkafka}" \
    --workload "$workload" --duration "$duration" --out "$out" 2>"$work/bench.log" \
    || { cat "$work/bench.log"; exit 1; }
done
echo "broker CPU seconds (user+sys): $(awk '{printf "%.1f", ($14+$15)/100}' /proc/$broker/stat)"
kill "$broker"; wait "$broker" 2>/dev/null || true; broker=
loopback
echo "loadavg after: $(cat /proc/loadavg)"
