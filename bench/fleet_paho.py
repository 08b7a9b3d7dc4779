#!/usr/bin/env python3
"""A peer for `iot-sim fleet`: N MQTT devices in one Python process (paho-mqtt 2.x, driven by
one asyncio loop through paho's external-loop socket callbacks, as in paho's own
loop_asyncio example). Connects them, waits until all are connected (CONNACK), holds them, and
prints one JSON line: devices, connected, connects_per_s, rss_bytes and rss_per_device_bytes
(RSS after connecting minus RSS before the first client). Shared client certificate; paho makes
the TLS handshake itself, blocking, inside connect().

    python3 bench/fleet_paho.py --host localhost --port 8883 --cafile ca.pem \
        --cert dev.pem --key dev.key -n 1000 --hold 5
"""

import argparse
import asyncio
import json
import socket
import ssl
import time

import paho.mqtt.client as mqtt


def rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Device:
    def __init__(self, loop, i, args, ctx, on_connected):
        self.loop = loop
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"paho-{i}")
        if ctx is not None:
            c.tls_set_context(ctx)
        c.on_connect = lambda cl, ud, flags, rc, props: on_connected(rc)
        c.on_socket_open = self.on_open
        c.on_socket_close = self.on_close
        c.on_socket_register_write = self.on_reg_write
        c.on_socket_unregister_write = self.on_unreg_write
        self.c = c

    def on_open(self, client, userdata, sock):
        self.loop.add_reader(sock, client.loop_read)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 2048)

    def on_close(self, client, userdata, sock):
        self.loop.remove_reader(sock)

    def on_reg_write(self, client, userdata, sock):
        self.loop.add_writer(sock, client.loop_write)

    def on_unreg_write(self, client, userdata, sock):
        self.loop.remove_writer(sock)


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="localhost")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--cafile")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("-n", type=int, default=100)
    p.add_argument("--hold", type=float, default=2.0)
    args = p.parse_args()
    loop = asyncio.get_running_loop()
    ctx = None
    if args.cafile:
        ctx = ssl.create_default_context(cafile=args.cafile)
        if args.cert:
            ctx.load_cert_chain(args.cert, args.key)
    base = rss_bytes()
    connected = 0
    done = loop.create_future()

    def on_connected(rc):
        nonlocal connected
        connected += 1
        if connected == args.n and not done.done():
            done.set_result(time.monotonic())

    start = time.monotonic()
    devices = []
    for i in range(args.n):
        d = Device(loop, i, args, ctx, on_connected)
        d.c.connect(args.host, args.port, keepalive=60)
        devices.append(d)
        await asyncio.sleep(0)  # let CONNACKs in between connects

    async def misc():
        while True:
            for d in devices:
                d.c.loop_misc()
            await asyncio.sleep(1)

    m = asyncio.create_task(misc())
    try:
        end = await asyncio.wait_for(done, timeout=120)
    except asyncio.TimeoutError:
        end = time.monotonic()
    await asyncio.sleep(args.hold)
    rss = rss_bytes()
    print(json.dumps({
        "peer": "paho-mqtt asyncio",
        "devices": args.n,
        "connected": connected,
        "connects_per_s": round(connected / (end - start), 1),
        "rss_bytes": rss,
        "rss_per_device_bytes": (rss - base) // max(args.n, 1),
    }))
    m.cancel()
    for d in devices:
        d.c.disconnect()


asyncio.run(main())
