#!/usr/bin/env bash
# Apache Kafka as the reference broker for `shardlog bench compare`.
#
#   bench/scripts/kafka-reference.sh start PORT DIR [KEY=VALUE...]
#       resolves Apache Kafka's broker jars from Maven Central (kafka_2.13 and
#       its dependencies, once, into $KAFKA_CACHE), formats a single-node KRaft
#       broker+controller in DIR (a fresh folder) and starts it on
#       127.0.0.1:PORT (its controller on PORT+1) in the background; prints its
#       PID once it answers. KEY=VALUE pairs are added to server.properties,
#       e.g. log.flush.interval.messages=1 for an fsync per batch (Kafka's
#       default is the page cache, no fsync; the topic-level name
#       flush.messages is ignored there). Logs in DIR/kafka.log.
#   bench/scripts/kafka-reference.sh stop DIR
#       ends the broker started in DIR (by its PID) and removes DIR.
#   bench/scripts/kafka-reference.sh perf-test BOOTSTRAP TOPIC RECORDS SIZE [RATE]
#       Kafka's own ProducerPerformance (acks=all) then ConsumerPerformance
#       against any broker: a cross-check of `shardlog bench` on both brokers.
#   bench/scripts/kafka-reference.sh smoke
#       starts one, creates a topic, produces and consumes 1,000 records with
#       the Java tools, checks the count, stops it. Not in CI (it downloads
#       ~90 jars and starts a JVM).
#
# Environment: KAFKA_VERSION (4.4.0), KAFKA_CACHE (~/.cache/shardlog/kafka-VERSION),
# KAFKA_HEAP_OPTS (-Xmx1G -Xms1G, as kafka-server-start.sh).
set -euo pipefail
version=${KAFKA_VERSION:-4.4.0}
cache=${KAFKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shardlog/kafka-$version}
libs=$cache/libs

resolve() {
  [[ -f $libs/.complete ]] && return
  mkdir -p "$cache"
  # log4j-slf4j-impl gives the broker's slf4j 1.7 calls somewhere to go.
  cat > "$cache/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>shardlog.bench</groupId>
  <artifactId>kafka-reference</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$version</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$version</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>2.25.5</version></dependency>
  </dependencies>
</project>
EOF
  rm -rf "$libs"
  mvn -q -B -f "$cache/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$libs" -DincludeScope=runtime >&2
  touch "$libs/.complete"
}

java_opts=(${KAFKA_HEAP_OPTS:--Xmx1G -Xms1G} -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20
  -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent
  -XX:MaxInlineLevel=15 -Djava.awt.headless=true)

kafka_java() { # CLASS ARGS...: a Kafka class on the resolved classpath
  java -cp "$libs/*" -Dlog4j2.configurationFile="$cache/log4j2.properties" "$@"
}

write_log_config() {
  cat > "$cache/log4j2.properties" <<'EOF'
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
EOF
}

start() { # PORT DIR [KEY=VALUE...]
  local port=$1 dir=$2; shift 2
  resolve
  write_log_config
  [[ -e $dir ]] && { echo "$dir exists: give a fresh folder" >&2; exit 1; }
  # Something answering there already would pass the wait below for Kafka.
  if (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "127.0.0.1:$port is in use (ss -ltnp 'sport = :$port' names it)" >&2; exit 1
  fi
  mkdir -p "$dir/data"
  {
    echo "process.roles=broker,controller"
    echo "node.id=1"
    echo "controller.quorum.voters=1@127.0.0.1:$((port + 1))"
    echo "listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$((port + 1))"
    echo "advertised.listeners=PLAINTEXT://127.0.0.1:$port"
    echo "controller.listener.names=CONTROLLER"
    echo "inter.broker.listener.name=PLAINTEXT"
    echo "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    echo "log.dirs=$dir/data"
    echo "num.partitions=1"
    echo "offsets.topic.replication.factor=1"
    echo "transaction.state.log.replication.factor=1"
    echo "transaction.state.log.min.isr=1"
    echo "share.coordinator.state.topic.replication.factor=1"
    echo "share.coordinator.state.topic.min.isr=1"
    echo "group.initial.rebalance.delay.ms=0"  # as Kafka's shipped server.properties
    for kv in "$@"; do echo "$kv"; done
  } > "$dir/server.properties"
  local id
  id=$(kafka_java kafka.tools.StorageTool random-uuid)
  kafka_java kafka.tools.StorageTool format -t "$id" -c "$dir/server.properties" >"$dir/format.log" 2>&1 \
    || { cat "$dir/format.log" >&2; exit 1; }
  # setsid: the broker outlives this script; `stop` ends it by its PID.
  setsid java "${java_opts[@]}" -cp "$libs/*" -Dlog4j2.configurationFile="$cache/log4j2.properties" \
    kafka.Kafka "$dir/server.properties" >"$dir/kafka.log" 2>&1 < /dev/null &
  local pid=$!
  echo "$pid" > "$dir/pid"
  for _ in $(seq 600); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "Kafka exited during start:" >&2; tail -30 "$dir/kafka.log" >&2; exit 1
    fi
    (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && { echo "$pid"; return; }
    sleep 0.1
  done
  echo "Kafka did not listen on $port within 60 s" >&2; kill "$pid"; exit 1
}

stop() { # DIR
  local dir=$1 pid
  pid=$(cat "$dir/pid")
  if kill "$pid" 2>/dev/null; then
    # Kafka's controlled shutdown takes a few seconds; then it is forced.
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}

perf_test() { # BOOTSTRAP TOPIC RECORDS SIZE [RATE]
  local bootstrap=$1 topic=$2 records=$3 size=$4 rate=${5:--1}
  resolve
  write_log_config
  kafka_java org.apache.kafka.tools.ProducerPerformance --topic "$topic" --num-records "$records" \
    --record-size "$size" --throughput "$rate" \
    --command-property bootstrap.servers="$bootstrap" acks=all
  kafka_java org.apache.kafka.tools.ConsumerPerformance --bootstrap-server "$bootstrap" \
    --topic "$topic" --num-records "$records" --timeout 60000
}

smoke() {
  # Globals: the EXIT trap runs after this function's locals are gone.
  smoke_dir=$(mktemp -u /tmp/kafka-reference.XXXXXX)
  trap '[[ -f $smoke_dir/pid ]] && stop "$smoke_dir"' EXIT
  local port=$((20000 + RANDOM % 20000)) pid
  pid=$(start "$port" "$smoke_dir")
  echo "Apache Kafka $version up as PID $pid on 127.0.0.1:$port"
  kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$port" \
    --create --topic smoke --partitions 2 >/dev/null
  local out
  out=$(perf_test "127.0.0.1:$port" smoke 1000 100)
  echo "$out"
  # ConsumerPerformance's data line ends "..., nMsg, nMsg.sec, ..."
  local consumed
  consumed=$(echo "$out" | awk -F', ' 'NF >= 6 && $5 ~ /^[0-9]+$/ {print $5}' | tail -1)
  [[ $consumed == 1000 ]] || { echo "smoke: consumed '$consumed', wanted 1000" >&2; exit 1; }
  echo "smoke: 1000 produced and consumed"
}

case ${1:-} in
start) shift; start "$@" ;;
stop) shift; stop "$@" ;;
perf-test) shift; perf_test "$@" ;;
smoke) smoke ;;
*) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
