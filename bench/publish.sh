#!/usr/bin/env bash
# Publish throughput of edgewire beside mosquitto_pub (and paho) on one private mosquitto, in the
# same run, through the shared peer harness (../shared/bench/pub_peers.sh), which checks the
# broker's received count so an early exit cannot pass. 100,000 x 200 B by default.
#
#   bench/publish.sh [--runs N] [--count N] ...   (extra flags go to pub_peers.sh)
#
# Figures: mosquitto_pub QoS 1 (reference), mosquitto_pub QoS 0, edgewire QoS 1 (memory outbox),
# edgewire QoS 1 with the disk spool, edgewire QoS 0.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HARNESS=${EDGEWIRE_BENCH_HARNESS:-$ROOT/../shared/bench/pub_peers.sh}
[[ -x $HARNESS ]] || { echo "publish.sh: peer harness not found at $HARNESS (set EDGEWIRE_BENCH_HARNESS)" >&2; exit 2; }
cd "$ROOT"
cargo build --release -p iot-sim --quiet
BIN="$ROOT/target/release/iot-sim"
SPOOL=$(mktemp -d "${TMPDIR:-/tmp}/edgewire-bench-spool.XXXXXX")
trap 'rm -rf -- "$SPOOL"' EXIT
common='pub -b "$BENCH_HOST:$BENCH_PORT" -t "$BENCH_TOPIC" -C "$BENCH_COUNT" --size "$BENCH_SIZE" --quiet'
exec "$HARNESS" --only mosquitto_pub \
  --contender 'mosquitto_pub-q0=for f in "$BENCH_LINES".[0-9][0-9]; do mosquitto_pub -h "$BENCH_HOST" -p "$BENCH_PORT" -t "$BENCH_TOPIC" -q 0 -l < "$f" || exit; done' \
  --contender "edgewire-q1=\"$BIN\" $common -q 1" \
  --contender "edgewire-q1-spool=rm -rf \"$SPOOL/s\"; \"$BIN\" $common -q 1 --spool \"$SPOOL/s\"" \
  --contender "edgewire-q0=\"$BIN\" $common -q 0" \
  "$@"
