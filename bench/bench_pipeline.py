"""The whole pipeline at increasing flow rates: simulator -> collector -> Kafka -> streams ->
autopilot + ClickHouse sink, each a child process (netpilot.dev.pipeline), on this machine.

For each rate: the demo scenario with ``flows_per_s`` set, run in real time for DURATION
seconds. Reported: flow records the simulator sent per second, flows the collector
published per second, loss (sent - published, and the collector's drop counters), the
ClickHouse sink's consumer lag and the streams watermark lag at mid-run and at the end (a
sustained rate is one where they do not grow), CPU per component (from /proc/<pid>/stat),
and the collector's share of time in decode+enrich+publish.

    .venv/bin/python bench/bench_pipeline.py [--bootstrap HOST:PORT] [--rates 2000,10000,30000]
                                             [--duration 30]

Without --bootstrap it uses (or starts) the local broker of `netpilot dev kafka up`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from netpilot import catalog  # noqa: E402
from netpilot.dev.pipeline import Pipeline, PipelineOptions  # noqa: E402
from netpilot.kafka.admin import TopicAdmin  # noqa: E402
from netpilot.settings import KafkaSettings  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / TICK  # utime + stime
    except (OSError, IndexError):
        return 0.0


def metric(text: str, name: str) -> float:
    return sum(float(v) for v in re.findall(rf"^{name}(?:\{{[^}}]*\}})? ([0-9.e+-]+)$", text, re.M))


def snapshot(pipe: Pipeline) -> dict[str, float]:
    col = pipe.children["collector"].metrics()
    sink = pipe.children["sink-clickhouse"].metrics()
    streams = pipe.children["streams"].metrics()
    return {
        "flows": metric(col, "netpilot_collector_flows_total"),
        "flow_drops": metric(col, "netpilot_collector_flows_dropped_total"),
        "datagram_drops": metric(col, "netpilot_collector_queue_dropped_datagrams_total")
        + metric(col, "netpilot_collector_socket_dropped_datagrams_total"),
        "decode_s": metric(col, "netpilot_collector_decode_seconds_sum"),
        "sink_lag": metric(sink, "netpilot_sink_clickhouse_consumer_lag_messages"),
        "watermark_lag": max(
            [
                float(v)
                for v in re.findall(r"^netpilot_streams_watermark_lag_seconds\{[^}]*\} ([0-9.e+-]+)$", streams, re.M)
            ]
            or [0.0]
        ),
    }


def run_rate(bootstrap: str, rate: int, duration: float, root: Path) -> dict:
    sc = yaml.safe_load((REPO / "examples" / "simulator" / "demo.yaml").read_text())
    sc.update(flows_per_s=rate, duration_s=duration)
    scenario = root / f"scenario-{rate}.yaml"
    scenario.write_text(yaml.safe_dump(sc))
    kafka = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=f"bench{uuid.uuid4().hex[:6]}.")
    admin = TopicAdmin(kafka)
    admin.sync(catalog.ALL_TOPICS)
    pipe = Pipeline(root / str(rate), kafka, scenario, PipelineOptions(prometheus=False))
    try:
        pipe.publish_network()
        pipe.start()
        pids = {n: c.proc.pid for n, c in pipe.children.items()}
        cpu0 = {n: cpu_s(p) for n, p in pids.items()}
        snap0, t0 = snapshot(pipe), time.monotonic()
        sim = pipe.simulate()
        pids["simulator"] = sim.pid
        mid = None
        sim_cpu = 0.0
        while sim.poll() is None:
            time.sleep(1)
            sim_cpu = max(sim_cpu, cpu_s(sim.pid))
            if mid is None and time.monotonic() - t0 > duration / 2:
                mid = snapshot(pipe)
        out = sim.stdout.read() if sim.stdout else ""
        wall = time.monotonic() - t0
        time.sleep(3)  # the collector's last pass
        end = snapshot(pipe)
        cpu = {n: cpu_s(p) - cpu0[n] for n, p in pids.items() if n != "simulator"}
        cpu["simulator"] = sim_cpu
        stats = json.loads(out.strip().splitlines()[-1])
    finally:
        pipe.stop()
        admin.delete(kafka.topic(t) for t in catalog.ALL_TOPICS)
    flows = end["flows"] - snap0["flows"]
    return {
        "rate": rate,
        "wall_s": wall,
        "sent_per_s": stats["records"] / wall,
        "published_per_s": flows / wall,
        "lost": stats["records"] - flows,
        "flow_drops": end["flow_drops"],
        "datagram_drops": end["datagram_drops"],
        "sim_lag_s": stats["max_lag_s"],
        "mid": mid or end,
        "end": end,
        "cpu_pct": {n: 100 * v / wall for n, v in cpu.items()},
        "collector_busy_pct": 100 * (end["decode_s"] - snap0["decode_s"]) / wall,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", default="")
    ap.add_argument("--rates", default="2000,10000,30000")
    ap.add_argument("--duration", type=float, default=30.0)
    a = ap.parse_args()
    bootstrap = a.bootstrap
    if not bootstrap:
        from netpilot.dev.kafka import LocalKafka

        bootstrap = LocalKafka().up().bootstrap
    print(f"cores: {os.cpu_count()}  duration per rate: {a.duration:.0f} s  broker: {bootstrap}")
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        for rate in (int(r) for r in a.rates.split(",")):
            r = run_rate(bootstrap, rate, a.duration, Path(tmp))
            cpu = "  ".join(f"{n} {v:.0f}%" for n, v in sorted(r["cpu_pct"].items()))
            print(
                f"\nflows_per_s={rate}: sent {r['sent_per_s']:,.0f}/s  published {r['published_per_s']:,.0f}/s  "
                f"not published {r['lost']:,.0f}  (collector dropped {r['datagram_drops']:,.0f} datagrams, "
                f"{r['flow_drops']:,.0f} flows)  simulator behind by "
                f"{r['sim_lag_s']:.1f} s"
            )
            print(
                f"  sink lag (messages) mid {r['mid']['sink_lag']:.0f} -> end {r['end']['sink_lag']:.0f};  "
                f"streams watermark lag mid {r['mid']['watermark_lag']:.1f} s "
                f"-> end {r['end']['watermark_lag']:.1f} s"
            )
            print(f"  CPU (% of one core): {cpu}")
            print(f"  collector decode+enrich+publish busy {r['collector_busy_pct']:.0f}% of wall time")


if __name__ == "__main__":
    main()
