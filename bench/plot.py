#!/usr/bin/env python3
"""PNG plots of the figures bench/plots.sh measured (matplotlib; `pip install -r
bench/requirements.txt`).

    bench/plot.py DATA_DIR OUT_DIR

DATA_DIR holds what bench/plots.sh wrote: inflight.txt (bench/peers.sh lines), sink.ndjson
(mqtt-sink --output json progress events), fleet.ndjson (iot-sim fleet --output json stats and
summary). Writes inflight.png, sink.png and fleet.png to OUT_DIR. A missing input is an error
that names the file, not an empty plot.
"""
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read(path: Path) -> str:
    if not path.exists():
        sys.exit(f"plot.py: {path} is missing; run bench/plots.sh first")
    return path.read_text()


def events(path: Path, kind: str) -> list[dict]:
    out = []
    for n, line in enumerate(read(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            v = json.loads(line)
        except json.JSONDecodeError as e:
            sys.exit(f"plot.py: {path} line {n} is not JSON: {e}")
        if v.get("type") == kind:
            out.append(v["data"])
    if not out:
        sys.exit(f"plot.py: {path} has no `{kind}` events")
    return out


def inflight(data: Path, out: Path) -> None:
    """Median msg/s per contender from peers.sh lines: `if<N>` against the in-flight window,
    mosquitto_pub as a line for reference."""
    rates = defaultdict(list)
    for line in read(data / "inflight.txt").splitlines()[1:]:
        f = line.split()
        if len(f) == 4:
            rates[f[0]].append(float(f[3]))
    windows = sorted((int(k[2:]), statistics.median(v)) for k, v in rates.items() if k.startswith("if"))
    if not windows:
        sys.exit(f"plot.py: {data / 'inflight.txt'} has no `if<N>` contenders")
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([w for w, _ in windows], [r for _, r in windows], "o-", label="edgewire (iot-sim pub -q 1 --inflight N)")
    for name, v in rates.items():
        if name.startswith("mosquitto_pub"):
            ax.axhline(statistics.median(v), linestyle="--", color="grey", label=f"{name} (median)")
    ax.set_xscale("log")
    ax.set_xlabel("in-flight window (messages awaiting PUBACK)")
    ax.set_ylabel("messages/s to the last PUBACK (median)")
    ax.set_title("QoS 1 publish, 100,000 x 200 B, one connection")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "inflight.png", dpi=110)


def sink(data: Path, out: Path) -> None:
    """Rows stored per second between progress events, over the run."""
    p = events(data / "sink.ndjson", "progress")
    t = [e["elapsed_s"] for e in p]
    stored = [e["stored"] for e in p]
    # Rates only while rows arrive: the reports after the last row would show the idle tail.
    spans = [(t1, (s1 - s0) / (t1 - t0)) for t0, t1, s0, s1 in zip(t, t[1:], stored, stored[1:]) if t1 > t0 and s1 > s0]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([x for x, _ in spans], [r for _, r in spans], "o-", label="rows/s (between reports)")
    ax2 = ax.twinx()
    ax2.plot(t, stored, color="tab:orange", alpha=0.6, label="rows stored")
    ax.set_xlabel("seconds since the sink started")
    ax.set_ylabel("rows/s committed")
    ax2.set_ylabel("rows stored")
    ax.set_title(f"mqtt-sink into PostgreSQL, {stored[-1]:,} seed readings")
    ax.grid(True, alpha=0.3)
    fig.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "sink.png", dpi=110)


def fleet(data: Path, out: Path) -> None:
    """Connected devices and confirmed messages/s over time; the publish-to-PUBACK latency
    percentiles of the whole run beside them."""
    stats = events(data / "fleet.ndjson", "stats")
    summary = events(data / "fleet.ndjson", "summary")[-1]
    t = [s["elapsed_s"] for s in stats]
    conf = [s["confirmed"] for s in stats]
    rate = [(c1 - c0) / (t1 - t0) if t1 > t0 else 0 for t0, t1, c0, c1 in zip(t, t[1:], conf, conf[1:])]
    fig, (ax, lat) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [3, 1]})
    ax.plot(t, [s["connected"] for s in stats], label="connected devices")
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("devices")
    ax2 = ax.twinx()
    ax2.plot(t[1:], rate, color="tab:green", alpha=0.7, label="confirmed msg/s")
    ax2.set_ylabel("confirmed messages/s")
    ax.set_title(f"iot-sim fleet: {summary['devices']} mTLS devices, {summary['connects_per_s']:.0f} connects/s")
    ax.grid(True, alpha=0.3)
    fig.legend(loc="lower center", ncol=2)
    pct = summary["latency_ms"]
    names = ["p50", "p90", "p99", "max"]
    lat.bar(names, [pct[n] for n in names], color="tab:purple")
    lat.set_yscale("log")  # p50 is a fraction of a millisecond, max is tens to hundreds
    for i, n in enumerate(names):
        lat.annotate(f"{pct[n]:.2f}", (i, pct[n]), ha="center", va="bottom", fontsize=8)
    lat.set_ylabel("ms, publish to PUBACK (log)")
    lat.set_title("latency (whole run)")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(out / "fleet.png", dpi=110)


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: bench/plot.py DATA_DIR OUT_DIR")
    data, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    inflight(data, out)
    sink(data, out)
    fleet(data, out)
    print(f"wrote {out}/inflight.png, sink.png, fleet.png")


if __name__ == "__main__":
    main()
