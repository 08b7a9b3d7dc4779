#!/usr/bin/env python3
"""A batched Python sink, the fair Python peer of mqtt-sink in bench/sink_cpu.sh: paho-mqtt
(2.x) subscribes at QoS 1, and readings are written to SQLite in transactions of up to BATCH
rows (executemany), committed at least every FLUSH_MS. It stops after COUNT rows.

    python3 bench/batch_sink.py --port 1883 --topic esp32/pub --db /tmp/r.db --count 100000
"""
import argparse
import json
import queue
import sqlite3
import sys
import time

import paho.mqtt.client as mqtt


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--topic", default="esp32/pub")
    ap.add_argument("--db", required=True)
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--flush-ms", type=int, default=200)
    a = ap.parse_args()

    db = sqlite3.connect(a.db)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(
        "CREATE TABLE IF NOT EXISTS readings (temperature REAL, data_hora TEXT)"
    )
    q: "queue.Queue[bytes]" = queue.Queue()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-py-sink")
    c.on_connect = lambda cl, _u, _f, _rc, _p: cl.subscribe(a.topic, qos=1)
    c.on_message = lambda _c, _u, m: q.put(m.payload)
    c.connect(a.host, a.port, keepalive=60)
    c.loop_start()
    stored, rows = 0, []
    last = time.monotonic()
    while stored < a.count:
        try:
            rows.append(q.get(timeout=a.flush_ms / 1000))
        except queue.Empty:
            pass
        due = time.monotonic() - last >= a.flush_ms / 1000
        if rows and (len(rows) >= a.batch or due):
            values = []
            for p in rows:
                try:
                    r = json.loads(p)
                    values.append((r.get("Temperature"), r.get("Data Hora")))
                except ValueError:
                    continue
            with db:
                db.executemany("INSERT INTO readings VALUES (?, ?)", values)
            stored += len(rows)
            rows, last = [], time.monotonic()
    c.loop_stop()
    c.disconnect()
    print(f"batch_sink: stored {stored}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
