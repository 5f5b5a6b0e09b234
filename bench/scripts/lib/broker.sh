# Sourced by the bench scripts: one shardlog broker in the background.

# broker_start BIN DIR PORT SHARDS [SERVE-ARG...]: starts `BIN serve` on
# 127.0.0.1:PORT with its data in DIR/data and its log in DIR/broker.log
# (emptied first), and returns once every shard has logged "shard ready";
# sets $pid. Exits with the log if the broker dies before.
broker_start() {
    local bin=$1 dir=$2 port=$3 shards=$4
    shift 4
    : >"$dir/broker.log"
    RUST_LOG=info "$bin" serve --listen "127.0.0.1:$port" --data-dir "$dir/data" \
        --shards "$shards" "$@" >>"$dir/broker.log" 2>&1 &
    pid=$!
    until [ "$(grep -c "shard ready" "$dir/broker.log" || true)" -ge "$shards" ]; do
        kill -0 "$pid" 2>/dev/null || { cat "$dir/broker.log" >&2; exit 1; }
        sleep 0.01
    done
}

# broker_stop: SIGTERM to $pid, and waits for it to exit.
broker_stop() {
    kill -TERM "$pid"
    wait "$pid" || true
    pid=
}
