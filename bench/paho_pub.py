#!/usr/bin/env python3
"""Publish COUNT messages of SIZE bytes with paho-mqtt (2.x) at QoS 1 and wait until every one
is acknowledged: the Python peer of `iot-sim pub` in bench/peers.sh.

    python3 bench/paho_pub.py --port 1883 --topic bench/t --count 100000 --size 200
"""
import argparse
import sys
import threading

import paho.mqtt.client as mqtt


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--qos", type=int, default=1, choices=[0, 1])
    ap.add_argument("--inflight", type=int, default=100)
    a = ap.parse_args()

    done = threading.Event()
    acked = 0

    def on_publish(_c, _u, _mid, _rc, _props):
        nonlocal acked
        acked += 1
        if acked == a.count:
            done.set()

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-paho")
    c.max_inflight_messages_set(a.inflight)
    c.max_queued_messages_set(0)
    c.on_publish = on_publish
    c.connect(a.host, a.port, keepalive=60)
    c.loop_start()
    payload = b"x" * a.size
    for _ in range(a.count):
        c.publish(a.topic, payload, qos=a.qos)
    ok = done.wait(timeout=600)
    c.loop_stop()
    c.disconnect()
    if not ok:
        print(f"paho_pub: only {acked} of {a.count} acknowledged", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
