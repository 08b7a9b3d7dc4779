#!/usr/bin/env python3
"""A batched Python sink, the fair Python peer of mqtt-sink in bench/sink_cpu.sh: paho-mqtt
(2.x) subscribes at QoS 1, readings are stored in transactions of up to BATCH rows, committed at
least every FLUSH_MS, and (with --ack commit, the default) each message's PUBACK is sent only
after the COMMIT that stored it, as mqtt-sink does. PostgreSQL (psycopg2) takes each batch with
one COPY; SQLite with executemany (WAL). Columns: temperature (a float), data_hora (text).
It stops after COUNT rows (0: runs until killed).

    python3 bench/batch_sink.py --port 1883 --db postgresql://postgres@127.0.0.1/test
    python3 bench/batch_sink.py --port 1883 --db /tmp/r.db --count 100000

--persistent keeps the broker session (clean session off, needs a fixed --client-id), so that
readings published while the sink is down wait for it: bench/sink_cpu.sh's BACKLOG mode.
"""
import argparse
import io
import json
import queue
import sqlite3
import sys
import time

import paho.mqtt.client as mqtt

NULL = "\\N"  # COPY's text format


class Postgres:
    def __init__(self, url, table):
        import psycopg2  # only needed for this database

        self.db, self.table = psycopg2.connect(url), table
        with self.db, self.db.cursor() as c:
            c.execute(f"CREATE TABLE IF NOT EXISTS {table} (temperature double precision, data_hora text)")

    def store(self, values):
        buf = io.StringIO()
        for t, d in values:
            buf.write(f"{NULL if t is None else t}\t{NULL if d is None else d}\n")
        buf.seek(0)
        with self.db, self.db.cursor() as c:
            c.copy_expert(f"COPY {self.table} (temperature, data_hora) FROM STDIN", buf)


class Sqlite:
    def __init__(self, path, table):
        self.db, self.table = sqlite3.connect(path), table
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"CREATE TABLE IF NOT EXISTS {table} (temperature REAL, data_hora TEXT)")

    def store(self, values):
        with self.db:
            self.db.executemany(f"INSERT INTO {self.table} VALUES (?, ?)", values)


def reading(payload):
    """(temperature, data_hora) of a seed-shaped reading, or None when it is not one."""
    try:
        r = json.loads(payload)
        t, d = r.get("Temperature"), r.get("Data Hora")
        return (float(t) if t is not None else None, d if isinstance(d, str) else None)
    except (ValueError, TypeError, AttributeError):
        return None


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--topic", default="esp32/pub")
    ap.add_argument("--db", required=True, help="postgresql://... or a SQLite file (sqlite:PATH too)")
    ap.add_argument("--table", default="readings")
    ap.add_argument("--count", type=int, default=0, help="stop after this many rows (0: never)")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--flush-ms", type=int, default=100)
    ap.add_argument("--ack", choices=("commit", "auto"), default="commit")
    ap.add_argument("--client-id", default="bench-py-sink")
    ap.add_argument("--persistent", action="store_true", help="clean session off")
    a = ap.parse_args()

    if a.db.startswith(("postgresql://", "postgres://")):
        db = Postgres(a.db, a.table)
    else:
        db = Sqlite(a.db.removeprefix("sqlite:"), a.table)
    q: "queue.Queue[mqtt.MQTTMessage]" = queue.Queue()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=a.client_id,
                    clean_session=not a.persistent, manual_ack=a.ack == "commit")
    c.on_connect = lambda cl, _u, _f, _rc, _p: cl.subscribe(a.topic, qos=1)
    c.on_message = lambda _c, _u, m: q.put(m)
    c.connect(a.host, a.port, keepalive=60)
    c.loop_start()
    stored, held = 0, []
    last = time.monotonic()
    while not a.count or stored < a.count:
        try:
            held.append(q.get(timeout=a.flush_ms / 1000))
        except queue.Empty:
            pass
        due = time.monotonic() - last >= a.flush_ms / 1000
        if held and (len(held) >= a.batch or due):
            values = [v for v in map(reading, (m.payload for m in held)) if v is not None]
            db.store(values)
            if a.ack == "commit":
                for m in held:
                    c.ack(m.mid, m.qos)
            stored += len(values)
            held, last = [], time.monotonic()
    c.loop_stop()
    c.disconnect()
    print(f"batch_sink: stored {stored}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
