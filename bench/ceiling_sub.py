#!/usr/bin/env python3
"""The cheapest QoS 1 subscriber we could write: a raw MQTT 3.1.1 socket that reads in gulps
every --gulp-ms, acknowledges each gulp with one write, stores nothing. Run beside a publisher it
shows how fast the broker and publisher can go on this machine when a subscriber costs almost
nothing: the ceiling for any sink measured with bench/sink_cpu.sh (and bench/batch_sink.py).

    python3 bench/ceiling_sub.py --port 18830 --topic esp32/pub --count 100000
"""
import argparse
import socket
import struct
import sys
import time


def remaining_length(buf, i):
    """(length, index after the length bytes) or None when incomplete."""
    mul, value = 1, 0
    while i < len(buf):
        b = buf[i]
        value += (b & 0x7F) * mul
        mul *= 128
        i += 1
        if b < 0x80:
            return value, i
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=18830)
    ap.add_argument("--topic", default="esp32/pub")
    ap.add_argument("--count", type=int, default=0, help="exit after this many messages (0: never)")
    ap.add_argument("--gulp-ms", type=float, default=5.0)
    ap.add_argument("--client-id", default="ceiling-sub")
    ap.add_argument("--persistent", action="store_true",
                    help="clean session off: what is published while it is away waits for it")
    a = ap.parse_args()

    s = socket.create_connection((a.host, a.port))
    cid = a.client_id.encode()
    flags = b"\x00" if a.persistent else b"\x02"
    body = b"\x00\x04MQTT\x04" + flags + b"\x00\x3c" + struct.pack(">H", len(cid)) + cid
    s.sendall(bytes([0x10, len(body)]) + body)
    if s.recv(4)[:1] != b"\x20":
        sys.exit("no CONNACK")
    topic = a.topic.encode()
    sub = struct.pack(">HH", 1, len(topic)) + topic + b"\x01"
    s.sendall(bytes([0x82, len(sub)]) + sub)

    buf, seen = b"", 0
    while not a.count or seen < a.count:
        time.sleep(a.gulp_ms / 1000)
        data = s.recv(4 << 20)
        if not data:
            break
        buf += data
        acks, i = [], 0
        while True:
            if len(buf) - i < 2:
                break
            rl = remaining_length(buf, i + 1)
            if rl is None or len(buf) < rl[1] + rl[0]:
                break
            length, start = rl
            if buf[i] >> 4 == 3:
                seen += 1
                if (buf[i] >> 1) & 3:
                    tlen = struct.unpack(">H", buf[start:start + 2])[0]
                    acks.append(b"\x40\x02" + buf[start + 2 + tlen:start + 4 + tlen])
            i = start + length
        buf = buf[i:]
        if acks:
            s.sendall(b"".join(acks))
    print(seen)


if __name__ == "__main__":
    main()
