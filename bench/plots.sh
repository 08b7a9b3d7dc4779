#!/usr/bin/env bash
# The pictures in docs/benchmarks.md, measured in one run on private servers and drawn by
# bench/plot.py (matplotlib: pip install -r bench/requirements.txt):
#   inflight.png  QoS 1 publish rate against the in-flight window (bench/peers.sh: the broker's
#                 delivered count is checked);
#   sink.png      mqtt-sink's committed rows/s over a run of 1,000,000 readings into PostgreSQL
#                 (PG, default postgresql://postgres@127.0.0.1:5432, trust auth; a fresh
#                 database `bench_plot`);
#   fleet.png     iot-sim fleet: 1,000 mTLS devices (certificates issued per device) connected
#                 over time, confirmed msg/s, and the publish-to-PUBACK latency percentiles.
#
#   bench/plots.sh [OUT_DIR]     (default docs/img; the raw data stays in OUT_DIR/data)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
OUT=${1:-docs/img}
DATA=$OUT/data
PG=${PG:-postgresql://postgres@127.0.0.1:5432}
export PATH="$PATH:/usr/sbin"
for tool in mosquitto mosquitto_pub openssl psql python3; do
  command -v "$tool" >/dev/null || { echo "plots.sh: $tool is missing" >&2; exit 2; }
done
python3 -c 'import matplotlib' 2>/dev/null ||
  { echo "plots.sh: matplotlib is missing (pip install -r bench/requirements.txt)" >&2; exit 2; }
cargo build --release --locked -p iot-sim -p mqtt-sink --quiet
SIM=$ROOT/target/release/iot-sim SINK=$ROOT/target/release/mqtt-sink
mkdir -p "$DATA"
work=$(mktemp -d "${TMPDIR:-/tmp}/edgewire-plots.XXXXXX")
broker=
sinkpid=
cleanup() {
  [ -n "$sinkpid" ] && kill "$sinkpid" 2>/dev/null || true
  [ -n "$broker" ] && kill "$broker" 2>/dev/null || true
  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS bench_plot WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf -- "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "plots.sh: nothing listens on port $1" >&2; exit 1
}

echo "== in-flight window" >&2
# mosquitto_pub's own figure is bench/publish.sh's; here it did not deliver all 100,000 twice in a
# row on 2026-12-03 (its -l mode ends before the last PUBACKs), so the plot shows ours alone.
contenders=()
for n in 1 4 16 64 100 256 1000; do
  contenders+=(--contender "if$n=\"$SIM\" pub -b \$BENCH_HOST:\$BENCH_PORT -t \$BENCH_TOPIC -C \$BENCH_COUNT --size \$BENCH_SIZE -q 1 --quiet --inflight $n")
done
bench/peers.sh --runs 3 "${contenders[@]}" | tee "$DATA/inflight.txt" >&2

echo "== sink over a run" >&2
port=$(free_port)
cat >"$work/plain.conf" <<CONF
user root
listener $port 127.0.0.1
allow_anonymous true
max_inflight_messages 1000
max_queued_messages 1000000
persistence false
CONF
mosquitto -c "$work/plain.conf" >"$work/plain.log" 2>&1 & broker=$!
wait_port "$port"
psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS bench_plot WITH (FORCE)" -c "CREATE DATABASE bench_plot" >/dev/null
"$SINK" --output json -b "127.0.0.1:$port" -t 'plot/#' -i plot-sink --db "$PG/bench_plot" \
  --map temperature=/Temperature --map 'data_hora=/Data Hora' --create-table --progress 1 >"$DATA/sink.ndjson" 2>"$work/sink.log" & sinkpid=$!
for _ in $(seq 200); do grep -q '"ready"' "$DATA/sink.ndjson" && break; sleep 0.05; done
grep -q '"ready"' "$DATA/sink.ndjson" || { cat "$work/sink.log" >&2; exit 1; }
"$SINK" simulate -b "127.0.0.1:$port" -t plot/esp32 -C 1000000 --rate 0 >&2
for _ in $(seq 600); do
  [ "$(psql -tA "$PG/bench_plot" -c 'SELECT count(*) FROM readings')" -ge 1000000 ] && break
  sleep 0.1
done
sleep 1.5 # one more progress report after the last row, so the plot ends at the total
kill -INT "$sinkpid"; wait "$sinkpid" || true; sinkpid=
kill "$broker"; wait "$broker" 2>/dev/null || true; broker=

echo "== fleet" >&2
port=$(free_port)
cd "$work"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key
openssl req -x509 -new -key ca.key -out ca.pem -days 2 -subj /CN=plots-ca \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out srv.key
openssl req -new -key srv.key -out srv.csr -subj /CN=localhost 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >srv.ext
openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 -extfile srv.ext 2>/dev/null
chmod 644 srv.key
cat >mtls.conf <<CONF
user root
per_listener_settings false
allow_anonymous true
max_connections -1
listener $port 127.0.0.1
cafile $work/ca.pem
certfile $work/srv.pem
keyfile $work/srv.key
require_certificate true
CONF
ulimit -n 20000 2>/dev/null || true
mosquitto -c mtls.conf >mtls.log 2>&1 & broker=$!
cd "$ROOT"
wait_port "$port"
"$SIM" --output json fleet -b "mqtts://localhost:$port" --cafile "$work/ca.pem" \
  --issuer-cert "$work/ca.pem" --issuer-key "$work/ca.key" -n 1000 --rate 1 -q 1 \
  --duration 20s --stats-interval 1s >"$DATA/fleet.ndjson"

python3 bench/plot.py "$DATA" "$OUT"
