#!/usr/bin/env bash
# Raw O_DIRECT sequential write bandwidth of the disk under $1 (fio, io_uring).
dir=${1:-/tmp/fio}; mkdir -p "$dir"
run() { # bs depth [extra]
  fio --name=seqw --directory="$dir" --ioengine=io_uring --direct=1 --rw=write --bs=$1 --iodepth=$2 --size=2G $3 \
      --output-format=json 2>/dev/null | python3 -c "import json,sys; j=json.load(sys.stdin)['jobs'][0]['write']; print('bs=$1 depth=$2 $3: %.0f MB/s' % (j['bw_bytes']/1e6))"
  rm -f "$dir"/seqw*
}
run 1M 32; run 1M 1; run 16k 1; run 16k 1 --fdatasync=1; run 1M 1 --fdatasync=1
