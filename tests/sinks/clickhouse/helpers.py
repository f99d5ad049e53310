"""Test helpers: synthetic flows/1 batches, and the sink run as a real subprocess."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from netpilot import catalog
from netpilot.kafka.producer import KafkaProducer, ProducerOptions
from netpilot.settings import KafkaSettings
from netpilot.wire import flows

REPO = Path(__file__).resolve().parents[3]
NETPILOT = [sys.executable, "-m", "netpilot.cli"]
POPS = ("ams", "fra", "lon", "par", "nyc", "sin")


@dataclass
class FlowSet:
    """Flow batches with the totals a correct sink must end up with."""

    messages: list[tuple[str, bytes]] = field(default_factory=list)
    rows: int = 0
    bytes: int = 0
    bytes_scaled: int = 0


def make_flows(n_messages: int, rows_per_message: int, seed: int, base_ms: int, tag_messages: bool = False) -> FlowSet:
    """Rows received in [base_ms, base_ms + 30 min): for a sink, that must be in the past
    (it dead-letters batches ahead of its clock, see netpilot.wire.intake). With
    ``tag_messages`` the router column names the message (``<pop>-m<i>``), so a test can
    count each message's rows in ClickHouse."""
    rng = np.random.default_rng(seed)
    out = FlowSet()
    for i in range(n_messages):
        n = rows_per_message
        pop = POPS[i % len(POPS)]
        t = base_ms + np.sort(rng.integers(0, 30 * 60_000, n)).astype(np.int64)
        b = rng.integers(40, 1500 * 20, n).astype(np.uint64)
        rate = rng.choice(np.array([1, 100, 1000], dtype=np.uint32), n)
        table = flows.flow_table(
            {
                "time_received": t,
                "time_start": t - 1000,
                "time_end": t,
                "flow_type": np.full(n, 3, np.uint8),
                "pop": pop,
                "router": f"{pop}-m{i}" if tag_messages else f"{pop}-r1",
                "link_id": (rng.integers(0, 4, n), [f"{pop}-l{j}" for j in range(4)]),
                "out_if": rng.integers(1, 5, n).astype(np.uint32),
                "src_addr": flows.ipv4_to_addr(rng.integers(0, 2**32, n, dtype=np.uint64)),
                "dst_addr": flows.ipv4_to_addr(rng.integers(0, 2**32, n, dtype=np.uint64)),
                "bytes": b,
                "packets": (b // 500 + 1).astype(np.uint64),
                "sampling_rate": rate,
                "bytes_scaled": b * rate,
                "packets_scaled": (b // 500 + 1) * rate,
                "dst_as": rng.integers(1, 70000, n).astype(np.uint32),
                "ip_proto": rng.choice(np.array([6, 17], np.uint8), n),
            }
        )
        out.messages.append((pop, flows.encode_flows(table)))
        out.rows += n
        out.bytes += int(b.sum())
        out.bytes_scaled += int((b * rate).sum())
    return out


def produce(kafka: KafkaSettings, messages: list[tuple[str, bytes]], topic: catalog.Topic = catalog.FLOWS) -> None:
    p = KafkaProducer(kafka, ProducerOptions(compression="none", linger_ms=5))
    name = kafka.topic(topic)
    for key, value in messages:
        p.produce(name, value, key=key, headers=flows.headers())
    p.flush(30)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SinkProcess:
    """``netpilot sink clickhouse run`` as a child process with its ports known."""

    def __init__(
        self,
        kafka: KafkaSettings,
        dsn: str,
        group: str,
        log: Path,
        extra_env: dict[str, str] | None = None,
        instance: int = 0,
    ) -> None:
        self.dsn = dsn  # the clickhouse_dsn fixture: chDB or a server (tests/backends.py)
        self.metrics_port = free_port()
        self.query_port = free_port()
        self.log = log
        self.env = {
            **os.environ,
            "NETPILOT_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "NETPILOT_KAFKA__TOPIC_PREFIX": kafka.topic_prefix,
            # static membership: a restarted sink takes its partitions back at once
            # instead of waiting for the killed member's session to time out
            # (one id per instance: two members with one id fence each other)
            "NETPILOT_SINK_CLICKHOUSE__GROUP_INSTANCE_ID": f"{group}-{instance}",
            "NETPILOT_KAFKA__LIBRDKAFKA": json.dumps({"session.timeout.ms": "6000"}),
            "NETPILOT_SINK_CLICKHOUSE__DSN": self.dsn,
            "NETPILOT_SINK_CLICKHOUSE__GROUP_ID": group,
            "NETPILOT_SINK_CLICKHOUSE__METRICS__LISTEN": f"127.0.0.1:{self.metrics_port}",
            "NETPILOT_SINK_CLICKHOUSE__QUERY_LISTEN": f"127.0.0.1:{self.query_port}",
            "NETPILOT_LOG__FORMAT": "json",
            **(extra_env or {}),
        }
        self.proc: subprocess.Popen | None = None

    def start(self) -> SinkProcess:
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(
                [*NETPILOT, "sink", "clickhouse", "run"], env=self.env, cwd=REPO, stdout=logf, stderr=subprocess.STDOUT
            )
        return self

    def metric(self, name: str) -> float:
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).read().decode()
        except OSError:
            return -1.0
        total = 0.0
        for line in body.splitlines():
            if line.startswith(name) and not line.startswith("#"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def wait_metric(self, name: str, at_least: float, timeout: float = 60) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.tail()
            v = self.metric(name)
            if v >= at_least:
                return v
            time.sleep(0.05)
        raise AssertionError(f"{name} stayed below {at_least} for {timeout}s\n{self.tail()}")

    def query(self, sql: str) -> list[list]:
        url = f"http://127.0.0.1:{self.query_port}/query?" + urllib.parse.urlencode(
            {"sql": sql, "format": "JSONCompact"}
        )
        return _ints(json.loads(urllib.request.urlopen(url, timeout=30).read())["data"])

    def wait_query(self, sql: str, expected: list, timeout: float = 90) -> list:
        deadline = time.monotonic() + timeout
        got: list = []
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.tail()
            try:
                got = self.query(sql)
            except OSError:
                got = []
            if got == expected:
                return got
            time.sleep(0.3)
        return got

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 60) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                raise AssertionError(f"sink did not stop within {timeout}s\n{self.tail()}") from None
        return self.proc.returncode

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "<no log>"


def wait_group_members(kafka: KafkaSettings, group: str, members: int, timeout: float = 60) -> None:
    """Until ``group`` is stable with ``members`` members that each own partitions (a test
    that wants load split must not produce before the second member is in)."""
    from confluent_kafka import ConsumerGroupState
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(kafka.client_config())  # type: ignore[arg-type]
    deadline = time.monotonic() + timeout
    seen = "no description"
    while time.monotonic() < deadline:
        try:
            desc = admin.describe_consumer_groups([group], request_timeout=5)[group].result()
            owning = [m for m in desc.members if m.assignment.topic_partitions]
            seen = f"{desc.state}, {len(desc.members)} members, {len(owning)} owning partitions"
            if desc.state == ConsumerGroupState.STABLE and len(desc.members) == len(owning) == members:
                return
        except Exception as exc:  # noqa: BLE001 - the group may not exist yet; retried
            seen = str(exc)[:200]
        time.sleep(0.2)
    raise AssertionError(f"group {group} not stable with {members} members after {timeout}s: {seen}")


def query_stopped(dsn: str, sql: str) -> list[list]:
    """Read through ``netpilot sink clickhouse query`` (the sink must be stopped)."""
    out = subprocess.run(
        [*NETPILOT, "sink", "clickhouse", "query", sql, "--format", "JSONCompact"],
        env={**os.environ, "NETPILOT_SINK_CLICKHOUSE__DSN": dsn},
        cwd=REPO,
        capture_output=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    return _ints(json.loads(out.stdout)["data"])


def _ints(rows: list[list]) -> list[list]:
    """JSONCompact quotes 64-bit integers; compare them as numbers."""
    return [[int(v) if isinstance(v, str) and v.lstrip("-").isdigit() else v for v in r] for r in rows]
