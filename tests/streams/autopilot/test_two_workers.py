"""Scale-out: two `netpilot autopilot run` processes in one group split the PoPs; one is
SIGKILLed and the other takes its PoPs over, so every PoP keeps cycling and none misses more
than one cycle (session timeout 6 s, 45 s for the restarted static member; cycle period 30 s,
the default, for the one not restarted, 10 s for the restarted one)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from netpilot import catalog
from netpilot.kafka.consumer import BatchConsumer
from netpilot.kafka.producer import KafkaProducer
from netpilot.settings import KafkaSettings
from netpilot.wire.autopilot import CycleSummary
from netpilot.wire.links import LinkInventory, LinkStats
from tests.streams.helpers import pops_one_per_partition, wait_for_metrics_url

CYCLE_S = 10.0
STATIC_SESSION_S = 45.0
"""The static test's session timeout: above a worker's restart time (start to join) on a
loaded machine: 14 s and 19 s were seen at load averages of 6 and 15, with 10 s and 20 s
sessions, and the group rebalanced. The test never waits it out (the workers are SIGKILLed
at the end and nobody joins after them)."""
TAKEOVER_CYCLE_S = 30.0
"""The takeover test's cycle: the default, longer than a takeover (the 6 s session plus the
survivor's restore), as the worker's start-up warning asks. A PoP of a worker killed and
not restarted then misses at most one cycle."""

pytestmark = pytest.mark.slow  # about two minutes each: two workers start, a kill, then cycles


class Worker:
    def __init__(
        self,
        k: KafkaSettings,
        app: str,
        data_dir: Path,
        log: Path,
        session_timeout_s: float = 6,
        cycle_s: float = CYCLE_S,
        **extra_env: str,
    ) -> None:
        env = dict(
            os.environ,
            NETPILOT_KAFKA__BOOTSTRAP_SERVERS=k.bootstrap_servers,
            NETPILOT_KAFKA__TOPIC_PREFIX=k.topic_prefix,
            NETPILOT_AUTOPILOT__APP_ID=app,
            NETPILOT_AUTOPILOT__DATA_DIR=str(data_dir),
            NETPILOT_AUTOPILOT__SESSION_TIMEOUT_S=str(session_timeout_s),
            NETPILOT_AUTOPILOT__POLICY__CYCLE_S=str(cycle_s),
            NETPILOT_AUTOPILOT__POLICY__MODE="suggest",
            NETPILOT_LOG__FORMAT="json",
            **extra_env,
        )
        self.log = log
        with log.open("w") as err:
            self.proc = subprocess.Popen(
                [str(Path(sys.executable).with_name("netpilot")), "autopilot", "run"], env=env, stderr=err
            )
        self.url = wait_for_metrics_url(self.proc, log, 90)

    def cycles(self) -> dict[str, float]:
        """Cycles run per PoP by this process."""
        try:
            with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as resp:  # noqa: S310 - 127.0.0.1 only
                text = resp.read().decode()
        except OSError as exc:
            try:  # a process that died as we asked: its exit code tells how
                code: int | None = self.proc.wait(2)
            except subprocess.TimeoutExpired:
                code = None
            raise AssertionError(
                f"{self.url}/metrics: {exc!r}; exit code {code}; log: {self.log.read_text()[-3000:]}"
            ) from exc
        return {
            m.group(1): float(m.group(2))
            for m in re.finditer(r'^netpilot_autopilot_cycles_total\{[^}]*pop="([^"]+)"[^}]*\} ([0-9.e+]+)', text, re.M)
        }

    def cycled_pops(self) -> set[str]:
        return {pop for pop, n in self.cycles().items() if n > 0}

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Cycles:
    """Six PoPs (one per partition), each with one transit link in the inventory and fresh
    counters ("one link at 20 %") fed while reading; ``at[pop]`` holds the cycle summaries'
    own timestamps (``generated_at``)."""

    def __init__(self, k: KafkaSettings) -> None:
        self.k = k
        self.pops = pops_one_per_partition()
        self.producer = KafkaProducer(k)
        for pop in self.pops:
            li = LinkInventory(pop=pop, link_id="transit", router="r1", capacity_bps=10e9, peer_type="transit")
            self.producer.produce(k.topic(catalog.LINK_INVENTORY), li.encode(), key=f"{pop}|transit", partition_key=pop)
        self.producer.flush()
        self.summaries = BatchConsumer(k, f"check-{uuid.uuid4().hex[:6]}", [k.topic(catalog.CYCLE_SUMMARIES)])
        self.at: dict[str, list[float]] = {pop: [] for pop in self.pops}

    def read(self, until: float) -> None:
        """Collect cycle summaries until ``until`` (monotonic), feeding counters meanwhile."""
        while time.monotonic() < until:
            for m in self.summaries.poll_batch(200, 0.5):
                s = CycleSummary.decode(m.value())
                if s.pop in self.at:
                    self.at[s.pop].append(s.generated_at)
            for pop in self.pops:
                stats = LinkStats(pop=pop, router="r1", link_id="transit", if_index=1, ts=time.time(), out_bps=2e9)
                self.producer.produce(self.k.topic(catalog.LINK_STATS), stats.encode(), key=pop)
            self.producer.poll(0)

    def wait_split(self, a: Worker, b: Worker) -> tuple[set[str], set[str]]:
        """Until both workers cycle PoPs of their own and every PoP has cycled: (a's, b's)."""
        deadline = time.monotonic() + 120
        owned_a, owned_b = a.cycled_pops(), b.cycled_pops()
        while time.monotonic() < deadline and not (owned_a and owned_b and all(self.at.values())):
            self.read(time.monotonic() + 1)
            owned_a, owned_b = a.cycled_pops(), b.cycled_pops()
        assert owned_a and owned_b and all(self.at.values()), (owned_a, owned_b, self.at, a.log.read_text()[-1500:])
        return owned_a, owned_b

    def gaps(self, since: float) -> dict[str, float]:
        """Per PoP, the longest time between two of its cycles, the later one after ``since``."""
        return {
            pop: max(t2 - t1 for t1, t2 in zip(ts, ts[1:]) if t2 > since)
            for pop, ts in ((pop, sorted(ts)) for pop, ts in self.at.items())
        }

    def close(self) -> None:
        self.summaries.close()


def test_two_autopilot_workers_one_killed_no_pop_misses_more_than_one_cycle(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """Two workers split the PoPs; one is SIGKILLed and not restarted. After the session
    timeout the survivor takes its PoPs over, and every PoP keeps cycling: measured on the
    cycle summaries' own timestamps, no gap between two cycles of a PoP reaches two periods
    (with the default cycle, longer than a takeover)."""
    cycles = Cycles(kafka_settings)
    app = f"ap2-{uuid.uuid4().hex[:6]}"
    a = Worker(kafka_settings, app, tmp_path / "a", tmp_path / "a.log", cycle_s=TAKEOVER_CYCLE_S)
    b = Worker(kafka_settings, app, tmp_path / "b", tmp_path / "b.log", cycle_s=TAKEOVER_CYCLE_S)
    try:
        cycles.wait_split(a, b)
        # a steady cycle for everyone; a's PoPs are those it cycles now (before the second
        # worker joined it had cycled them all)
        before = a.cycles()
        cycles.read(time.monotonic() + TAKEOVER_CYCLE_S + 2)
        owned_a = {pop for pop, n in a.cycles().items() if n > before.get(pop, 0.0)}
        assert owned_a and owned_a < set(cycles.pops), owned_a
        a.close()  # SIGKILL
        killed_at = time.time()
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not owned_a <= b.cycled_pops():
            cycles.read(time.monotonic() + 1)
        assert b.proc.poll() is None, b.log.read_text()[-2000:]
        assert owned_a <= b.cycled_pops(), (owned_a, b.cycled_pops(), b.log.read_text()[-1500:])
        took_over = time.time()
        cycles.read(time.monotonic() + 2 * TAKEOVER_CYCLE_S)
        gaps = cycles.gaps(since=killed_at - TAKEOVER_CYCLE_S)
        print(
            f"\ntakeover: the survivor cycled every PoP of the killed worker {took_over - killed_at:.1f} s after "
            f"the kill; longest gap between two cycles of a PoP (cycle {TAKEOVER_CYCLE_S:.0f} s):\n  "
            + ", ".join(f"{pop} {g:.1f} s{' (taken over)' if pop in owned_a else ''}" for pop, g in gaps.items())
        )
        now = time.time()
        for pop, ts in cycles.at.items():  # still cycling at the end
            assert max(ts) > took_over and now - max(ts) < 2 * TAKEOVER_CYCLE_S, (
                pop,
                [round(t - killed_at, 1) for t in sorted(ts)],
            )
        assert all(g < 2 * TAKEOVER_CYCLE_S for g in gaps.values()), gaps
    finally:
        a.close()
        b.close()
        cycles.close()


def test_two_static_workers_one_killed_and_restarted_no_pop_misses_a_cycle(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """Static membership (each worker its own group_instance_id, as the chart's pod names):
    a SIGKILLed worker restarted at once with its id (a container restarted in its pod) is
    the same member, so no rebalance happens: the other worker's PoPs go on as if nothing
    happened (measured on the cycle summaries' own timestamps, every gap between two of
    their cycles is under two periods), and the restarted one gets its own PoPs back and
    cycles them within two periods of its start."""
    k = kafka_settings
    cycles = Cycles(k)
    pops = cycles.pops
    app = f"ap2s-{uuid.uuid4().hex[:6]}"

    def worker(name: str, n: int) -> Worker:
        # The restarted process must rejoin within the session timeout to be the same
        # member. The production default (10 s) covers a start here when the machine is
        # quiet (2-6 s); on a loaded machine a start took 14 s, the member expired and the
        # group rebalanced (the restarted worker then got other PoPs): a deployment sizes
        # session_timeout_s above its restart time, and so does this test.
        return Worker(
            k,
            app,
            tmp_path / name,
            tmp_path / f"{name}-{n}.log",
            session_timeout_s=STATIC_SESSION_S,
            NETPILOT_AUTOPILOT__GROUP_INSTANCE_ID=f"{app}-{name}",
        )

    a, b = worker("a", 0), worker("b", 0)
    try:
        cycles.wait_split(a, b)
        # a steady cycle for everyone; a's PoPs are those it cycles now (before the second
        # worker joined it had cycled them all)
        before = a.cycles()
        cycles.read(time.monotonic() + CYCLE_S + 2)
        owned_a = {pop for pop, n in a.cycles().items() if n > before.get(pop, 0.0)}
        assert owned_a and owned_a < set(pops), owned_a
        a.close()  # SIGKILL
        killed_at = time.time()
        a = worker("a", 1)  # the same member again
        started_at = time.time()  # serving its metrics: started
        assert started_at - killed_at < STATIC_SESSION_S, f"the restart took {started_at - killed_at:.1f} s"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not owned_a <= a.cycled_pops():
            cycles.read(time.monotonic() + 1)
        joined = re.findall(r"Joined group .* \(generation (\d+)\)", a.log.read_text())
        assert owned_a <= a.cycled_pops(), (owned_a, a.cycled_pops(), f"restart {started_at - killed_at:.1f} s", joined)
        cycles.read(time.monotonic() + 2 * CYCLE_S)
        assert a.proc.poll() is None and b.proc.poll() is None
        gaps = cycles.gaps(since=killed_at - CYCLE_S)
        back = {pop: min(t for t in cycles.at[pop] if t > started_at) - started_at for pop in owned_a}
        restart_s = started_at - killed_at
        print(f"\nrestart {restart_s:.1f} s; longest gap between two cycles of a PoP (cycle {CYCLE_S:.0f} s):")
        print("  " + ", ".join(f"{pop} {g:.1f} s{' (restarted)' if pop in owned_a else ''}" for pop, g in gaps.items()))
        print("  restarted PoPs' first cycle after the start: " + ", ".join(f"{p} +{t:.1f} s" for p, t in back.items()))
        assert all(g < 2 * CYCLE_S for pop, g in gaps.items() if pop not in owned_a), gaps
        assert all(t < 2 * CYCLE_S for t in back.values()), back
    finally:
        a.close()
        b.close()
        cycles.close()
