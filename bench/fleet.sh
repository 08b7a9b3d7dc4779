#!/usr/bin/env bash
# docs/benchmarks.md "Fleet": connect rate of `iot-sim fleet` against mosquitto's own mutual-TLS
# handshake ceiling, beside the Python asyncio peer (bench/fleet_paho.py) in the same run, and
# RSS per connection. One private mosquitto (mTLS listener, ECDSA P-256 CA and server key made
# here with openssl). mosquitto's CPU (utime + stime from /proc/PID/stat) is read around each
# run: CPU per handshake = its CPU / connections, its ceiling = 1 / that (one thread).
#
#   bench/fleet.sh [SIM] [N...]      (default target/release/iot-sim, N = 1000 10000)
#
# Prints one line per run: who, N, connected, connects/s, broker CPU ms per handshake, the
# broker's ceiling/s, our rate as a share of it, peak RSS and RSS per connection above base.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIM=${1:-$ROOT/target/release/iot-sim}
shift || true
SIZES=("${@:-1000 10000}")
read -r -a SIZES <<<"${SIZES[*]}"
export PATH="$PATH:/usr/sbin"
for tool in mosquitto openssl python3; do
  command -v "$tool" >/dev/null || { echo "fleet.sh: $tool is missing" >&2; exit 2; }
done
work=$(mktemp -d "${TMPDIR:-/tmp}/edgewire-fleet.XXXXXX")
broker=
cleanup() {
  [ -n "$broker" ] && kill "$broker" 2>/dev/null || true
  rm -rf -- "$work"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cd "$work"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key
openssl req -x509 -new -key ca.key -out ca.pem -days 2 -subj /CN=fleet-ca \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
for who in srv dev; do
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $who.key
  openssl req -new -key $who.key -out $who.csr -subj "/CN=$who" 2>/dev/null
done
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >srv.ext
printf 'extendedKeyUsage=clientAuth\n' >dev.ext
for who in srv dev; do
  openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $who.pem -days 2 \
    -extfile $who.ext 2>/dev/null
done
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
ulimit -n 30000 2>/dev/null || true
mosquitto -c mtls.conf >mtls.log 2>&1 & broker=$!
for _ in $(seq 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null && break
  sleep 0.05
done
tick=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$broker/stat"; }
line() { # who n connected rate cpu_ticks peak base
  python3 - "$@" "$tick" <<'PY'
import sys
who, n, conn, rate, ticks, peak, base, tick = sys.argv[1:]
n, conn, rate, ticks, peak, base, tick = int(n), int(conn), float(rate), int(ticks), int(peak), int(base), int(tick)
ms = ticks * 1000 / tick / max(conn, 1)
ceiling = 1000 / ms if ms else float("inf")
per = (peak - base) / max(n - 1, 1) / 1024 if peak else 0
print(f"{who:28} n={n:6} connected={conn:6} {rate:7.0f}/s  broker {ms:.2f} ms/handshake, ceiling {ceiling:5.0f}/s, "
      f"{100 * rate / ceiling:4.0f}% of it  peak RSS {peak / 1e6:6.1f} MB, {per:4.1f} KiB/connection")
PY
}
ours() { # label n extra-args...
  local label=$1 n=$2
  shift 2
  local c0 c1 out
  c0=$(cpu)
  out=$("$SIM" --output json fleet -b "mqtts://localhost:$port" --cafile ca.pem "$@" -n "$n" \
    --duration "$((n / 250 + 6))s" --stats-interval 0 --connect-timeout 30 | grep '"summary"')
  c1=$(cpu)
  python3 -c 'import json,sys; d=json.loads(sys.argv[1])["data"]; print(d["connected"], d["connects_per_s"], d["peak_rss_bytes"])' "$out"
  echo "$((c1 - c0))"
}
base_shared=$("$SIM" --output json fleet -b "mqtts://localhost:$port" --cafile ca.pem --cert dev.pem --key dev.key \
  -n 1 --duration 2s --stats-interval 0 | grep '"summary"' | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["peak_rss_bytes"])')
base_issued=$("$SIM" --output json fleet -b "mqtts://localhost:$port" --cafile ca.pem --issuer-cert ca.pem --issuer-key ca.key \
  -n 1 --duration 2s --stats-interval 0 | grep '"summary"' | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["peak_rss_bytes"])')
for n in "${SIZES[@]}"; do
  { read -r conn rate peak; read -r ticks; } < <(ours shared "$n" --cert dev.pem --key dev.key)
  line "ours, shared certificate" "$n" "$conn" "$rate" "$ticks" "$peak" "$base_shared"
  { read -r conn rate peak; read -r ticks; } < <(ours issued "$n" --issuer-cert ca.pem --issuer-key ca.key)
  line "ours, issued per device" "$n" "$conn" "$rate" "$ticks" "$peak" "$base_issued"
  c0=$(cpu)
  out=$(python3 "$ROOT/bench/fleet_paho.py" --host localhost --port "$port" --cafile ca.pem --cert dev.pem \
    --key dev.key -n "$n" --hold 2 | tail -1)
  c1=$(cpu)
  read -r conn rate rss per < <(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["connected"], d["connects_per_s"], d["rss_bytes"], d["rss_per_device_bytes"])' "$out")
  line "paho-mqtt asyncio, shared" "$n" "$conn" "$rate" "$((c1 - c0))" 0 0
  echo "    (paho RSS $((rss / 1000000)) MB, $((per / 1024)) KiB/device above its base)"
done
