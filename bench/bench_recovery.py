"""Recovery time of the ClickHouse sink after a restart: process start -> first insert.

    .venv/bin/python bench/bench_recovery.py --bootstrap 127.0.0.1:39092 [--rounds 2]

Needs a running broker (``netpilot dev kafka up``, or the test broker on 39092). Creates
fresh topics and a producer writing a small flows/1 message to every PoP every 0.2 s. Then, for
each consumer configuration, it runs ``netpilot sink clickhouse run`` as a child process on a
chDB path and restarts it ``--rounds`` times each way:

- **SIGTERM**: a clean stop (the consumer leaves the group in ``close()``), then a new process;
- **SIGKILL**: the process dies without a word, and a new one starts at once.

For every new process it prints two times from ``Popen``: **ready** (its ``/metrics`` answers:
Python, chDB and the migrations loaded) and **first insert** (``batches_total`` >= 1, so it
owns partitions, fetched and inserted). The configurations:

- ``before``: the consumer settings up to issue 13 (45 s session, 3 s heartbeat, eager
  ``range,roundrobin`` assignment), passed as ``kafka.librdkafka`` overrides;
- ``after``: the defaults of :class:`netpilot.kafka.consumer.ConsumerOptions`;
- ``static``: the defaults plus static membership (``group.instance.id``).

Prints figures; asserts nothing. Figures and their reading: docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np

from netpilot import catalog
from netpilot.kafka.admin import TopicAdmin
from netpilot.kafka.producer import KafkaProducer, ProducerOptions
from netpilot.settings import KafkaSettings
from netpilot.wire import flows

REPO = Path(__file__).resolve().parents[1]
POPS = ("ams", "fra", "lon", "par", "nyc", "sin", "syd", "tyo")
CONFIGS: dict[str, dict[str, str]] = {
    "before": {
        "session.timeout.ms": "45000",
        "heartbeat.interval.ms": "3000",
        "partition.assignment.strategy": "range,roundrobin",
    },
    "after": {},
    "static": {"group.instance.id": "bench-sink-0"},
}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def feed(kafka: KafkaSettings, stop: threading.Event) -> None:
    """A trickle of flows to every PoP (so every partition has something to insert)."""
    p = KafkaProducer(kafka, ProducerOptions(compression="none", linger_ms=5))
    topic = kafka.topic(catalog.FLOWS)
    rng = np.random.default_rng(7)
    while not stop.is_set():
        now_ms = int(time.time() * 1000) - 5_000
        for pop in POPS:
            n = 50
            t = np.full(n, now_ms, np.int64)
            b = rng.integers(40, 1500, n).astype(np.uint64)
            table = flows.flow_table(
                {
                    "time_received": t,
                    "time_start": t - 1000,
                    "time_end": t,
                    "flow_type": np.full(n, 3, np.uint8),
                    "pop": pop,
                    "router": f"{pop}-r1",
                    "link_id": (np.zeros(n, np.int64), [f"{pop}-l0"]),
                    "out_if": np.ones(n, np.uint32),
                    "src_addr": flows.ipv4_to_addr(rng.integers(0, 2**32, n, dtype=np.uint64)),
                    "dst_addr": flows.ipv4_to_addr(rng.integers(0, 2**32, n, dtype=np.uint64)),
                    "bytes": b,
                    "packets": np.ones(n, np.uint64),
                    "sampling_rate": np.ones(n, np.uint32),
                    "bytes_scaled": b,
                    "packets_scaled": np.ones(n, np.uint64),
                    "dst_as": np.full(n, 64500, np.uint32),
                    "ip_proto": np.full(n, 6, np.uint8),
                }
            )
            p.produce(topic, flows.encode_flows(table), key=pop, headers=flows.headers())
        p.poll(0)
        stop.wait(0.2)
    p.flush(10)


def metric(port: int, name: str) -> float | None:
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1).read().decode()
    except OSError:
        return None
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines() if line.startswith(name))


class Sink:
    def __init__(self, kafka: KafkaSettings, dsn: str, group: str, overrides: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "NETPILOT_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "NETPILOT_KAFKA__TOPIC_PREFIX": kafka.topic_prefix,
            "NETPILOT_KAFKA__LIBRDKAFKA": json.dumps(overrides),
            "NETPILOT_SINK_CLICKHOUSE__DSN": dsn,
            "NETPILOT_SINK_CLICKHOUSE__GROUP_ID": group,
            "NETPILOT_SINK_CLICKHOUSE__BATCH_MAX_SECONDS": "0.2",
            "NETPILOT_SINK_CLICKHOUSE__METRICS__LISTEN": f"127.0.0.1:{self.port}",
            "NETPILOT_LOG__FORMAT": "json",
        }
        self.log = log
        self.t0 = time.monotonic()
        with open(log, "ab") as f:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "netpilot.cli", "sink", "clickhouse", "run"],
                env=self.env,
                cwd=REPO,
                stdout=f,
                stderr=subprocess.STDOUT,
            )

    def wait(self, timeout: float = 180) -> tuple[float, float]:
        """(ready, first insert) in seconds from Popen."""
        ready: float | None = None
        deadline = self.t0 + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sink exited {self.proc.returncode}; see {self.log}")
            v = metric(self.port, "netpilot_sink_clickhouse_batches_total")
            if v is not None and ready is None:
                ready = time.monotonic() - self.t0
            if v is not None and v >= 1:
                assert ready is not None
                return ready, time.monotonic() - self.t0
            time.sleep(0.05)
        raise RuntimeError(f"no insert within {timeout}s; see {self.log}")

    def end(self, how: signal.Signals) -> None:
        self.proc.send_signal(how)
        self.proc.wait(90)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", default="127.0.0.1:39092")
    ap.add_argument("--rounds", type=int, default=2, help="restarts per configuration and signal")
    ap.add_argument("--configs", default=",".join(CONFIGS), help=f"any of {','.join(CONFIGS)}")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-recovery-"))
    stop = threading.Event()
    feeder: threading.Thread | None = None
    kafka = KafkaSettings(bootstrap_servers=args.bootstrap, topic_prefix=f"rec{uuid.uuid4().hex[:6]}.")
    admin = TopicAdmin(kafka)
    sink: Sink | None = None
    try:
        admin.sync(catalog.ALL_TOPICS)
        time.sleep(2)  # metadata settles on the new topics
        feeder = threading.Thread(target=feed, args=(kafka, stop), daemon=True)
        feeder.start()
        print(f"flows/1: {catalog.FLOWS.partitions} partitions; load before: {os.getloadavg()[0]:.1f} (2 cores)")
        print(f"{'config':8} {'restart':8} {'ready s':>8} {'first insert s':>15}   (median of {args.rounds}, max)")
        for name in args.configs.split(","):
            overrides = CONFIGS[name]
            group = f"bench-recovery-{name}-{uuid.uuid4().hex[:6]}"
            if "group.instance.id" in overrides:
                overrides = {**overrides, "group.instance.id": f"{group}-0"}
            dsn = f"chdb://{work / ('ch-' + name)}"
            sink = Sink(kafka, dsn, group, overrides, work / f"{name}.log")
            sink.wait()
            for how in (signal.SIGTERM, signal.SIGKILL):
                firsts: list[float] = []
                readies: list[float] = []
                for _ in range(args.rounds):
                    time.sleep(3)  # running steadily, committing, heart-beating
                    sink.end(how)
                    sink = Sink(kafka, dsn, group, overrides, work / f"{name}.log")
                    ready, first = sink.wait()
                    readies.append(ready)
                    firsts.append(first)
                print(
                    f"{name:8} {how.name:8} {statistics.median(readies):8.1f} "
                    f"{statistics.median(firsts):8.1f} ({max(firsts):4.1f})"
                )
            sink.end(signal.SIGTERM)
            sink = None
    finally:
        if sink is not None and sink.proc.poll() is None:
            sink.end(signal.SIGKILL)
        stop.set()
        if feeder is not None:
            feeder.join(15)
        for fut in admin.client.delete_topics([kafka.topic(t) for t in catalog.ALL_TOPICS]).values():
            fut.result(30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
