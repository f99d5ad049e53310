"""Recovery time after a restart: process start -> first insert (ClickHouse sink) or first
cycle (autopilot).

    .venv/bin/python bench/bench_recovery.py --bootstrap 127.0.0.1:19092 [--rounds 2]

Needs a running broker (``netpilot dev kafka up``, or the test broker on 19092). Creates
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
- ``static``: the defaults plus static membership (the sink's ``group_instance_id``, the
  same for every new process, as a pod restarted in place keeps its name).

Then the same for ``netpilot autopilot run`` (one link per PoP in the inventory, so each PoP
plans a cycle): first work is ``cycles_total`` >= 1, with the session timeout at 30 s (the
old default) and 10 s (the new one), and 10 s with static membership (``10:static``: every
restart has the same ``group_instance_id``); ``--autopilot-sessions ""`` skips it. The same
for one ``netpilot streams run`` alone (first work: ``flows_total`` >= 1),
``--streams-restarts``.

Last, the scale-out case of ``netpilot streams run``: two workers in one group split the
PoPs; one of them is stopped (SIGTERM, then SIGKILL) and the time from the signal to the
survivor counting flows of *every* PoP the stopped one had (``flows_total{pop}`` growing)
is the **takeover**; a new second worker is started for the next round.
``--streams-sessions ""`` skips it.

Prints figures; asserts nothing. Figures and their reading: docs/performance.md.
"""

from __future__ import annotations

import argparse
import functools
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
from collections.abc import Callable
from pathlib import Path

import numpy as np

from netpilot import catalog
from netpilot.kafka.admin import TopicAdmin
from netpilot.kafka.producer import KafkaProducer, ProducerOptions
from netpilot.settings import KafkaSettings
from netpilot.wire import flows
from netpilot.wire.links import LinkInventory

REPO = Path(__file__).resolve().parents[1]
POPS = ("ams", "fra", "lon", "par", "nyc", "sin", "syd", "tyo")
CONFIGS: dict[str, dict[str, str]] = {
    "before": {
        "session.timeout.ms": "45000",
        "heartbeat.interval.ms": "3000",
        "partition.assignment.strategy": "range,roundrobin",
    },
    "after": {},
    "static": {},
}
STATIC = {"static"}
"""Configurations run with the sink's ``group_instance_id`` set."""


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


class Proc:
    """A ``netpilot`` component as a child process with its /metrics on a known port."""

    def __init__(self, args: list[str], env: dict[str, str], metrics_env: str, first: str, log: Path) -> None:
        self.port = free_port()
        self.first = first
        self.log = log
        self.t0 = time.monotonic()
        with open(log, "ab") as f:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "netpilot.cli", *args],
                env={**os.environ, **env, metrics_env: f"127.0.0.1:{self.port}", "NETPILOT_LOG__FORMAT": "json"},
                cwd=REPO,
                stdout=f,
                stderr=subprocess.STDOUT,
            )

    def wait(self, timeout: float = 180) -> tuple[float, float]:
        """(ready, first work) in seconds from Popen."""
        ready: float | None = None
        deadline = self.t0 + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited {self.proc.returncode}; see {self.log}")
            v = metric(self.port, self.first)
            if v is not None and ready is None:
                ready = time.monotonic() - self.t0
            if v is not None and v >= 1:
                assert ready is not None
                return ready, time.monotonic() - self.t0
            time.sleep(0.05)
        raise RuntimeError(f"no {self.first} within {timeout}s; see {self.log}")

    def end(self, how: signal.Signals) -> None:
        self.proc.send_signal(how)
        self.proc.wait(90)


def sink(kafka: KafkaSettings, work: Path, name: str) -> Callable[[], Proc]:
    overrides = CONFIGS[name]
    group = f"bench-recovery-{name}-{uuid.uuid4().hex[:6]}"
    env = {
        "NETPILOT_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "NETPILOT_KAFKA__TOPIC_PREFIX": kafka.topic_prefix,
        "NETPILOT_KAFKA__LIBRDKAFKA": json.dumps(overrides),
        "NETPILOT_SINK_CLICKHOUSE__DSN": f"chdb://{work / ('ch-' + name)}",
        "NETPILOT_SINK_CLICKHOUSE__GROUP_ID": group,
        "NETPILOT_SINK_CLICKHOUSE__BATCH_MAX_SECONDS": "0.2",
        "NETPILOT_SINK_CLICKHOUSE__GROUP_INSTANCE_ID": f"{group}-0" if name in STATIC else "",
    }
    return lambda: Proc(
        ["sink", "clickhouse", "run"],
        env,
        "NETPILOT_SINK_CLICKHOUSE__METRICS__LISTEN",
        "netpilot_sink_clickhouse_batches_total",
        work / f"sink-{name}.log",
    )


def faust_variant(spec: str) -> tuple[int, bool]:
    """``10`` (session 10 s, dynamic membership) or ``10:static`` (and a group instance id)."""
    session, _, how = spec.partition(":")
    if how not in ("", "static"):
        raise SystemExit(f"bad faust variant {spec!r}: SECONDS or SECONDS:static")
    return int(session), how == "static"


def autopilot(kafka: KafkaSettings, work: Path, spec: str) -> Callable[[], Proc]:
    session_s, static = faust_variant(spec)
    tag = f"ap{session_s}{'s' if static else ''}"
    env = {
        "NETPILOT_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "NETPILOT_KAFKA__TOPIC_PREFIX": kafka.topic_prefix,
        "NETPILOT_AUTOPILOT__APP_ID": f"bench-{tag}-{uuid.uuid4().hex[:6]}",
        "NETPILOT_AUTOPILOT__DATA_DIR": str(work / tag),
        "NETPILOT_AUTOPILOT__SESSION_TIMEOUT_S": str(session_s),
        "NETPILOT_AUTOPILOT__POLICY__MODE": "suggest",
        # static: every restart is the same member (as a pod restarted in place)
        "NETPILOT_AUTOPILOT__GROUP_INSTANCE_ID": "bench-autopilot-0" if static else "",
    }
    return lambda: Proc(
        ["autopilot", "run"],
        env,
        "NETPILOT_AUTOPILOT__METRICS__LISTEN",
        "netpilot_autopilot_cycles_total",
        work / f"autopilot-{tag}.log",
    )


def streams(kafka: KafkaSettings, work: Path, spec: str) -> Callable[[str], Proc]:
    """Workers of one app; a static worker's instance id is its name (same name, same member)."""
    session_s, static = faust_variant(spec)
    app = f"bench-st{session_s}{'s' if static else ''}-{uuid.uuid4().hex[:6]}"

    def make(name: str) -> Proc:
        env = {
            "NETPILOT_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "NETPILOT_KAFKA__TOPIC_PREFIX": kafka.topic_prefix,
            "NETPILOT_STREAMS__APP_ID": app,
            "NETPILOT_STREAMS__DATA_DIR": str(work / f"{app}-{name}"),
            "NETPILOT_STREAMS__SESSION_TIMEOUT_S": str(session_s),
            "NETPILOT_STREAMS__GROUP_INSTANCE_ID": name if static else "",
        }
        return Proc(
            ["streams", "run"],
            env,
            "NETPILOT_STREAMS__METRICS__LISTEN",
            "netpilot_streams_flows_total",
            work / f"{app}-{name}.log",
        )

    return make


def pop_flows(port: int) -> dict[str, float]:
    """``netpilot_streams_flows_total`` per PoP ({} while /metrics does not answer)."""
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1).read().decode()
    except OSError:
        return {}
    out = {}
    for line in body.splitlines():
        if line.startswith('netpilot_streams_flows_total{pop="'):
            out[line.split('"')[1]] = float(line.rsplit(" ", 1)[1])
    return out


def busy(port: int, seconds: float = 2.0) -> set[str]:
    """PoPs whose flows counter grows over ``seconds``."""
    before = pop_flows(port)
    time.sleep(seconds)
    return {pop for pop, n in pop_flows(port).items() if n > before.get(pop, 0.0)}


def takeovers(spec: str, make: Callable[[str], Proc], rounds: int) -> None:
    """Two workers; stop one, time until the survivor processes all of its PoPs."""
    survivor = make("survivor")
    survivor.wait()
    try:
        for how in (signal.SIGTERM, signal.SIGKILL):
            times: list[float] = []
            for r in range(rounds):
                other = make(f"{how.name}-{r}")
                other.wait()
                deadline = time.monotonic() + 120
                mine, theirs = set(), set()
                while time.monotonic() < deadline:  # the split settles after the join
                    mine, theirs = busy(survivor.port), busy(other.port)
                    if mine and theirs and mine | theirs == set(POPS) and not mine & theirs:
                        break
                if not (mine and theirs):
                    raise RuntimeError(f"no split of the PoPs: {mine} / {theirs}; see {other.log}")
                at_stop = pop_flows(survivor.port)
                t0 = time.monotonic()
                other.proc.send_signal(how)
                while time.monotonic() < t0 + 180:
                    now = pop_flows(survivor.port)
                    if all(now.get(pop, 0.0) > at_stop.get(pop, 0.0) for pop in theirs):
                        break
                    time.sleep(0.05)
                else:
                    raise RuntimeError(f"no takeover of {theirs} in 180 s; see {survivor.log}")
                times.append(time.monotonic() - t0)
                other.proc.wait(90)
            print(
                f"{'streams ' + spec:22} {how.name:8} {'':8} "
                f"{statistics.median(times):8.1f} ({max(times):4.1f})  takeover of the other's PoPs",
                flush=True,
            )
    finally:
        if survivor.proc.poll() is None:
            survivor.end(signal.SIGTERM)


def inventory(kafka: KafkaSettings) -> None:
    """One link per PoP: enough for the autopilot to plan (and count) a cycle per PoP."""
    p = KafkaProducer(kafka)
    for pop in POPS:
        li = LinkInventory(pop=pop, link_id="transit", router="r1", capacity_bps=10e9, peer_type="transit")
        p.produce(kafka.topic(catalog.LINK_INVENTORY), li.encode(), key=f"{pop}|transit", partition_key=pop)
    p.flush(30)


def restarts(label: str, make: Callable[[], Proc], rounds: int) -> None:
    proc = make()
    proc.wait()
    try:
        for how in (signal.SIGTERM, signal.SIGKILL):
            firsts: list[float] = []
            readies: list[float] = []
            for _ in range(rounds):
                time.sleep(3)  # running steadily, committing, heart-beating
                proc.end(how)
                proc = make()
                ready, first = proc.wait()
                readies.append(ready)
                firsts.append(first)
            print(
                f"{label:22} {how.name:8} {statistics.median(readies):8.1f} "
                f"{statistics.median(firsts):8.1f} ({max(firsts):4.1f})",
                flush=True,
            )
    finally:
        if proc.proc.poll() is None:
            proc.end(signal.SIGTERM)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", default="127.0.0.1:19092")
    ap.add_argument("--rounds", type=int, default=2, help="restarts per configuration and signal")
    ap.add_argument("--configs", default=",".join(CONFIGS), help=f"sink configurations: any of {','.join(CONFIGS)}")
    ap.add_argument(
        "--autopilot-sessions",
        default="30,10,10:static",
        help="autopilot variants to restart: session timeouts (s), ':static' for static membership",
    )
    ap.add_argument(
        "--streams-restarts",
        default="10,10:static",
        help="streams variants to restart alone (first flows counted), as --autopilot-sessions",
    )
    ap.add_argument(
        "--streams-sessions",
        default="10,6",
        help="streams variants for the two-worker takeover, as --autopilot-sessions",
    )
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-recovery-"))
    stop = threading.Event()
    feeder: threading.Thread | None = None
    kafka = KafkaSettings(bootstrap_servers=args.bootstrap, topic_prefix=f"rec{uuid.uuid4().hex[:6]}.")
    admin = TopicAdmin(kafka)
    try:
        admin.sync(catalog.ALL_TOPICS)
        time.sleep(2)  # metadata settles on the new topics
        feeder = threading.Thread(target=feed, args=(kafka, stop), daemon=True)
        feeder.start()
        inventory(kafka)
        print(f"{catalog.FLOWS.partitions} partitions per topic; load before: {os.getloadavg()[0]:.1f} (2 cores)")
        print(
            f"{'component/config':22} {'restart':8} {'ready s':>8} {'first work s':>13} (median of {args.rounds}, max)"
        )
        for name in [c for c in args.configs.split(",") if c]:
            restarts(f"sink {name}", sink(kafka, work, name), args.rounds)
        for spec in [x for x in args.autopilot_sessions.split(",") if x]:
            restarts(f"autopilot {spec}", autopilot(kafka, work, spec), args.rounds)
        for spec in [x for x in args.streams_restarts.split(",") if x]:
            restarts(f"streams {spec}", functools.partial(streams(kafka, work, spec), "alone"), args.rounds)
        for spec in [x for x in args.streams_sessions.split(",") if x]:
            takeovers(spec, streams(kafka, work, spec), args.rounds)
    finally:
        stop.set()
        if feeder is not None:
            feeder.join(15)
        for fut in admin.client.delete_topics([kafka.topic(t) for t in catalog.ALL_TOPICS]).values():
            fut.result(30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
