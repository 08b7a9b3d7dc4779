#!/usr/bin/env bash
# Publish throughput of edgewire beside mosquitto_pub (and paho) on one private mosquitto, in the
# same run, through bench/peers.sh, which checks the broker's delivered count so an early exit
# cannot pass. 100,000 x 200 B by default.
#
#   bench/publish.sh [--runs N] [--count N] ...   (extra flags go to peers.sh)
#
# Figures: mosquitto_pub QoS 1 (reference), mosquitto_pub QoS 0, paho-mqtt QoS 1 (Python),
# edgewire QoS 1 (memory outbox), edgewire QoS 1 with the disk spool, edgewire QoS 0.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
cargo build --release -p iot-sim --quiet
BIN="$ROOT/target/release/iot-sim"
SPOOL=$(mktemp -d "${TMPDIR:-/tmp}/edgewire-bench-spool.XXXXXX")
trap 'rm -rf -- "$SPOOL"' EXIT
common='pub -b "$BENCH_HOST:$BENCH_PORT" -t "$BENCH_TOPIC" -C "$BENCH_COUNT" --size "$BENCH_SIZE" --quiet'
exec "$ROOT/bench/peers.sh" \
  --contender 'mosquitto_pub-q1=mosquitto_pub -h "$BENCH_HOST" -p "$BENCH_PORT" -t "$BENCH_TOPIC" -q 1 -l < "$BENCH_LINES"' \
  --contender 'mosquitto_pub-q0=mosquitto_pub -h "$BENCH_HOST" -p "$BENCH_PORT" -t "$BENCH_TOPIC" -q 0 -l < "$BENCH_LINES"' \
  --contender "paho-q1=python3 \"$ROOT/bench/paho_pub.py\" --port \"\$BENCH_PORT\" --topic \"\$BENCH_TOPIC\" --count \"\$BENCH_COUNT\" --size \"\$BENCH_SIZE\"" \
  --contender "edgewire-q1=\"$BIN\" $common -q 1" \
  --contender "edgewire-q1-spool=rm -rf \"$SPOOL/s\"; \"$BIN\" $common -q 1 --spool \"$SPOOL/s\"" \
  --contender "edgewire-q0=\"$BIN\" $common -q 0" \
  "$@"
