#!/usr/bin/env bash
# CPU per 100,000 rows of an MQTT -> PostgreSQL sink, beside its throughput: a private mosquitto
# (max_inflight_messages 1000, max_queued_messages 1000000, no persistence) on a free port, a
# fresh database `bench_cpu` on the PostgreSQL at $PG (trust auth), 100,000 seed-shaped
# readings published with `mosquitto_pub -l -q 1` (two processes of 50,000: mosquitto_pub
# 2.0.11 stops waiting for PUBACKs once packet ids wrap), time from the first publish until
# count(*) reaches 100,000. CPU (user + system, from /proc, clock ticks) is summed over the
# sink's process group, the broker, and every process of the `postgres` user (so keep the
# machine otherwise quiet: another client of that server counts too).
#
#   bench/sink_cpu.sh NAME 'CMD' [runs]
#
# CMD runs under `bash -c` in its own process group with BENCH_RUN, BENCH_PORT, BENCH_TOPIC, BENCH_TABLE,
# BENCH_CLIENT_ID and BENCH_PG_URL set; it must subscribe at QoS 1 and store one row per reading
# in BENCH_TABLE (created if missing). COPIES=N starts N of them (BENCH_CLIENT_ID gets `-k`;
# for a shared subscription CMD adds `--share`). PUBLISH='CMD' replaces the two mosquitto_pub
# processes (it gets BENCH_PORT and must publish the 100,000 readings at QoS 1 and exit after the
# last PUBACK). BACKLOG=1 times a catch-up instead of a stream: the sinks subscribe, are stopped
# (SIGTERM), every reading is published into their persistent sessions (CMD must keep one: a
# fixed client id, clean session off), and the clock and the CPU sums start when the same CMD is
# started again, so the publisher's work is not in the figures. Prints one JSON line per run;
# exits 1 when the broker does not count the sinks' subscriptions within about a minute. Ends
# only what it started.
set -euo pipefail
name=${1:?usage: bench/sink_cpu.sh NAME CMD [runs]}
cmd=${2:?usage: bench/sink_cpu.sh NAME CMD [runs]}
runs=${3:-3}
PG=${PG:-postgresql://postgres@127.0.0.1:5432}
N=100000
T0='2026-11-24 10:00:00' # the first reading's "Data Hora"; each next one is a second later
export PATH="$PATH:/usr/sbin"

work=$(mktemp -d /tmp/sink-cpu-XXXXXX)
broker_pid=
sink_pgid=
cleanup() {
  [ -n "$sink_pgid" ] && kill -TERM -- "-$sink_pgid" 2>/dev/null || true
  [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null || true
  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS bench_cpu WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/mosquitto.conf" <<EOF
user root
listener $port 127.0.0.1
allow_anonymous true
sys_interval 1
max_inflight_messages ${INFLIGHT:-1000}
max_queued_messages 1000000
persistence false
EOF
mosquitto -c "$work/mosquitto.conf" >"$work/broker.log" 2>&1 &
broker_pid=$!
for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done

python3 - "$work" "$N" "$T0" <<'EOF'
import datetime, json, sys
work, n = sys.argv[1], int(sys.argv[2])
t0 = datetime.datetime.fromisoformat(sys.argv[3])
for part in range(0, n, 50000):
    with open(f"{work}/lines.{part // 50000:02d}", "w") as f:
        for i in range(part, min(n, part + 50000)):
            t = t0 + datetime.timedelta(seconds=i)
            f.write(json.dumps({"Temperature": 20 + (i * 37) % 100 / 10,
                                "Data Hora": t.strftime("%Y-%m-%d %H:%M:%S")}) + "\n")
EOF

ticks() { # summed utime+stime of the given pids
  local sum=0 p f a
  for p in "$@"; do
    f=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    read -ra a <<<"${f##*) }" # fields after the command name: state, ppid, ... utime=11, stime=12
    sum=$((sum + a[11] + a[12]))
  done
  echo "$sum"
}
group() { ps -eo pid=,pgid= | awk -v g="$1" '$2 == g {print $1}'; }
pg_pids() { pgrep -u postgres || true; }
hz=$(getconf CLK_TCK)
# The count is retained and refreshed every second: `-R` skips the retained copy, which can be the
# previous run's count (its sinks still subscribed), and waits for the next, which counts the
# probe itself. Publishing on a stale count sent a run's first readings to nobody.
subscriptions() { mosquitto_sub -p "$port" -t '$SYS/broker/subscriptions/count' -R -C 1 -W 3 2>/dev/null || echo 0; }

# One process group for all copies, so one kill ends them and one sum counts them.
start_sinks() {
  setsid bash -c 'for k in $(seq '"$copies"'); do BENCH_CLIENT_ID="$BENCH_CLIENT_ID-$k" bash -c "$0" & done; wait' "$cmd" >>"$work/sink.log" 2>&1 &
  sink_pgid=$!
}
stop_sinks() {
  kill -TERM -- "-$sink_pgid" 2>/dev/null || true
  wait "$sink_pgid" 2>/dev/null || true
  sink_pgid=
}
publish() {
  if [ -n "${PUBLISH:-}" ]; then
    bash -c "$PUBLISH" >/dev/null
  else
    for f in "$work"/lines.*; do mosquitto_pub -p "$port" -t esp32/pub -q 1 -l <"$f"; done
  fi
}

for run in $(seq "$runs"); do
  : >"$work/sink.log"
  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS bench_cpu WITH (FORCE)" -c "CREATE DATABASE bench_cpu" >/dev/null
  export BENCH_RUN=$run BENCH_PORT=$port BENCH_TOPIC=esp32/pub BENCH_TABLE=readings \
    BENCH_CLIENT_ID="cpu-$name-$run-$$" BENCH_PG_URL="$PG/bench_cpu"
  copies=${COPIES:-1}
  start_sinks
  # Subscribed: the count passes COPIES (the probe itself is one). Publishing without them
  # would lose readings and show up only as a short count at the end.
  subscribed=0
  for _ in $(seq 60); do
    [ "$(subscriptions)" -gt "$copies" ] && { subscribed=1; break; }
  done
  if [ "$subscribed" = 0 ]; then
    echo "run $run: the broker did not count $copies sink subscription(s) within about a minute; the sinks' output:" >&2
    tail -50 "$work/sink.log" >&2
    exit 1
  fi
  if [ -n "${BACKLOG:-}" ]; then
    stop_sinks
    publish
    s0=0 b0=$(ticks "$broker_pid") p0=$(ticks $(pg_pids))
    start=$(date +%s.%N)
    start_sinks
  else
    s0=$(ticks $(group "$sink_pgid")); b0=$(ticks "$broker_pid"); p0=$(ticks $(pg_pids))
    start=$(date +%s.%N)
    publish
  fi
  have=0
  for _ in $(seq 1200); do
    have=$(psql -tAq "$PG/bench_cpu" -c "SELECT count(*) FROM readings")
    [ "$have" -ge "$N" ] && break
    sleep 0.05
  done
  end=$(date +%s.%N)
  s1=$(ticks $(group "$sink_pgid")); b1=$(ticks "$broker_pid"); p1=$(ticks $(pg_pids))
  distinct=$(psql -tAq "$PG/bench_cpu" -c "SELECT count(DISTINCT data_hora) FROM readings")
  if [ "$have" -lt "$N" ]; then
    echo "run $run incomplete ($have rows); the sinks' output:" >&2
    # Which readings are missing, as ranges of their index (seconds after T0). The cast reads
    # a text column and a timestamptz one (the Python sink's) alike.
    psql -tAq "$PG/bench_cpu" -c "WITH want AS (SELECT i FROM generate_series(0, $N - 1) i),
      miss AS (SELECT i FROM want WHERE NOT EXISTS (SELECT 1 FROM readings r
        WHERE r.data_hora::timestamp = timestamp '$T0' + i * interval '1 second'))
      SELECT 'missing ' || min(i) || '..' || max(i) || ' (' || count(*) || ')' FROM (SELECT i, i - row_number() OVER (ORDER BY i) g FROM miss) s GROUP BY g ORDER BY min(i) LIMIT 10" >&2 || true
    tail -50 "$work/sink.log" >&2
    tail -20 "$work/broker.log" >&2
  fi
  stop_sinks
  python3 - "$name" "$run" "$have" "$distinct" "$start" "$end" "$((s1 - s0))" "$((b1 - b0))" "$((p1 - p0))" "$hz" <<'EOF'
import json, sys
name, run, rows, distinct, t0, t1, s, b, p, hz = sys.argv[1:]
secs = float(t1) - float(t0)
per = lambda t: round(int(t) / int(hz) * 100000 / max(int(rows), 1), 3)
print(json.dumps({"figure": name, "run": int(run), "rows": int(rows), "distinct": int(distinct),
                  "seconds": round(secs, 3), "rows_per_s": round(int(rows) / secs),
                  "cpu_s_per_100k": {"sink": per(s), "broker": per(b), "postgres": per(p)}}))
EOF
done
