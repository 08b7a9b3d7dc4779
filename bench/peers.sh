#!/usr/bin/env bash
# Publish throughput of each contender against one private mosquitto, in the same run: every
# contender publishes COUNT messages of SIZE bytes to its own topic while `mosquitto_sub -C COUNT`
# counts what the broker delivered, so a publisher that exits early cannot pass. Prints one line
# per run: name, seconds, msg/s. Written for this repository (bench/publish.sh calls it).
#
#   bench/peers.sh [--runs N] [--count N] [--size N] --contender 'NAME=COMMAND' ...
#
# COMMAND runs under bash with BENCH_HOST, BENCH_PORT, BENCH_TOPIC, BENCH_COUNT, BENCH_SIZE and
# BENCH_LINES (a file of COUNT payload lines) set.
set -euo pipefail
runs=3 count=100000 size=200
contenders=()
while (($#)); do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --count) count=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --contender) contenders+=("$2"); shift 2 ;;
    *) echo "peers.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
((${#contenders[@]})) || { echo "peers.sh: no --contender given" >&2; exit 2; }
for tool in mosquitto mosquitto_sub python3; do
  command -v "$tool" >/dev/null || { echo "peers.sh: $tool is missing (apt-get install mosquitto mosquitto-clients python3)" >&2; exit 2; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/edgewire-peers.XXXXXX")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
max_inflight_messages 100
max_queued_messages 1000000
persistence false
CONF
mosquitto -c "$work/mosquitto.conf" >"$work/broker.log" 2>&1 &
broker=$!
trap 'kill "$broker" 2>/dev/null; wait "$broker" 2>/dev/null; rm -rf -- "$work"' EXIT
for _ in $(seq 100); do
  python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null && break
  sleep 0.05
done

python3 -c "import sys; n,s=int(sys.argv[1]),int(sys.argv[2]); sys.stdout.write(('x'*s+'\n')*n)" "$count" "$size" >"$work/lines"
export BENCH_HOST=127.0.0.1 BENCH_PORT=$port BENCH_COUNT=$count BENCH_SIZE=$size BENCH_LINES=$work/lines

printf '%-22s %4s %9s %10s\n' contender run seconds msg/s
for ((run = 1; run <= runs; run++)); do
  for c in "${contenders[@]}"; do
    name=${c%%=*} cmd=${c#*=}
    export BENCH_TOPIC="bench/$name/$run"
    mosquitto_sub -h 127.0.0.1 -p "$port" -t "$BENCH_TOPIC" -q 1 -C "$count" >/dev/null &
    sub=$!
    sleep 0.3 # the counter subscribes before the first publish
    start=$(date +%s.%N)
    if ! bash -c "$cmd"; then
      echo "peers.sh: $name failed" >&2; kill "$sub" 2>/dev/null; exit 1
    fi
    if ! timeout 120 tail --pid="$sub" -f /dev/null; then
      echo "peers.sh: the broker did not deliver $count messages of $name" >&2; kill "$sub"; exit 1
    fi
    end=$(date +%s.%N)
    python3 -c "import sys; t=float(sys.argv[3])-float(sys.argv[2]); print(f'{sys.argv[1]:<22} {sys.argv[4]:>4} {t:9.2f} {int(sys.argv[5])/t:10.0f}')" \
      "$name" "$start" "$end" "$run" "$count"
  done
done
