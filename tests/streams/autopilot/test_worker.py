"""The autopilot worker on the real broker: overload -> ADD within a cycle, load drops ->
WITHDRAW after the hold, and a restarted worker keeps its overrides."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from netpilot import catalog
from netpilot.kafka.consumer import BatchConsumer
from netpilot.kafka.producer import KafkaProducer
from netpilot.settings import KafkaSettings
from netpilot.wire import aggregates as wa
from netpilot.wire.autopilot import CycleSummary, Recommendation
from netpilot.wire.links import LinkInventory, LinkStats
from netpilot.wire.routes import Route
from streams.autopilot.metrics import AutopilotMetrics
from streams.autopilot.policy import Policy
from streams.autopilot.service import AutopilotService
from streams.autopilot.settings import AutopilotSettings
from tests.streams.autopilot.test_inputs import PREFIXES, aggregates

CYCLE_S = 2.0
HOLD_S = 6.0


class Feed:
    """Produces what the upstream components would: inventory, routes, counters, aggregates."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka
        self.p = KafkaProducer(kafka)

    def network(self) -> None:
        inv = self.kafka.topic(catalog.LINK_INVENTORY)
        for link, cap, kind in (("pni", 10e9, "pni"), ("transit", 40e9, "transit")):
            li = LinkInventory(pop="ams1", link_id=link, router="r1", capacity_bps=cap, peer_type=kind)
            self.p.produce(inv, li.encode(), key=f"ams1|{link}", partition_key="ams1")
        for prefix in PREFIXES:
            for link in ("pni", "transit"):
                r = Route(
                    pop="ams1", link_id=link, prefix=prefix, local_pref=200 if link == "pni" else 100, as_path=(64500,)
                )
                self.p.produce(self.kafka.topic(catalog.ROUTES), r.encode(), key=r.key(), partition_key="ams1")
        self.p.flush()

    def load(self, pni_bps: float) -> None:
        """Two minutes of demand on the PNI ending now, and counters saying the same."""
        now = time.time()
        rates = {(prefix, "pni"): pni_bps / len(PREFIXES) for prefix in PREFIXES}
        # windows on the 10 s grid, like the streams worker's: a later load replaces them
        table = aggregates((now // 10) * 10 - 120, 12, rates)
        self.p.produce(self.kafka.topic(catalog.FLOW_AGGREGATES), wa.encode_aggregates(table), key="ams1")
        for link, bps in (("pni", pni_bps), ("transit", 10e9)):
            s = LinkStats(pop="ams1", router="r1", link_id=link, if_index=1, ts=now, out_bps=bps)
            self.p.produce(self.kafka.topic(catalog.LINK_STATS), s.encode(), key="ams1")
        self.p.flush()


def start(kafka: KafkaSettings, data_dir: Path, app: str) -> AutopilotService:
    policy = Policy(mode="suggest", cycle_s=CYCLE_S, hold_s=HOLD_S, stale_after_cycles=60, cooldown_s=60)
    settings = AutopilotSettings(kafka=kafka, policy=policy, app_id=app, data_dir=data_dir)
    svc = AutopilotService(settings, AutopilotMetrics.create())
    svc.start(timeout=90)
    return svc


def wait_for(consumer: BatchConsumer, pred, timeout: float = 60.0) -> list:
    seen: list = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        for m in consumer.poll_batch(200, 0.5):
            seen.append(m)
        if pred(seen):
            return seen
    raise AssertionError(
        f"condition not met in {timeout}s; saw {len(seen)} messages: {[m.value()[:160] for m in seen[-5:]]}"
    )


@pytest.mark.timeout(400)
def test_overload_add_withdraw_and_restart(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    app = f"ap-{uuid.uuid4().hex[:6]}"
    feed = Feed(kafka_settings)
    feed.network()
    feed.load(9.7e9)  # the PNI at 97 %
    recs = BatchConsumer(kafka_settings, f"{app}-check", [kafka_settings.topic(catalog.RECOMMENDATIONS)])
    sums = BatchConsumer(kafka_settings, f"{app}-check2", [kafka_settings.topic(catalog.CYCLE_SUMMARIES)])

    def decoded(ms: list) -> list[Recommendation]:
        return [Recommendation.decode(m.value()) for m in ms]

    svc = start(kafka_settings, tmp_path / "a", app)
    try:
        t0 = time.time()
        got = wait_for(recs, lambda ms: any(r.action == "ADD" for r in decoded(ms)), timeout=90)
        adds = [r for r in decoded(got) if r.action == "ADD"]
        assert all(r.from_.link_id == "pni" and r.to.link_id == "transit" and r.reason == "OVERLOAD" for r in adds)
        assert all(m.key().decode() == f"ams1|{r.prefix}" for m, r in zip(got, decoded(got)))
        assert adds[0].from_.util_projected_before == pytest.approx(0.97, abs=0.01)
        assert adds[0].from_.util_projected_after < adds[0].from_.util_projected_before
        added = {r.prefix for r in adds}
        assert time.time() - t0 < 60
        summary = CycleSummary.decode(wait_for(sums, lambda ms: len(ms) > 0)[0].value())
        assert summary.pop == "ams1" and "pni" in summary.overloaded_links
        assert svc.health() == (True, "ok")  # cycles ran: no failure, no missing cycle
    finally:
        svc.stop()

    # restart: a fresh worker (new process state, same app id and changelogs) refreshes the
    # same overrides instead of adding them again
    feed.load(9.7e9)
    svc = start(kafka_settings, tmp_path / "b", app)
    try:
        got = wait_for(recs, lambda ms: any(r.action in ("REFRESH", "ADD") for r in decoded(ms)), timeout=90)
        after = [r for r in decoded(got) if r.action in ("REFRESH", "ADD")]
        assert {r.action for r in after} == {"REFRESH"}, [(r.action, r.prefix) for r in after]
        assert {r.prefix for r in after} <= added

        # load drops: the overrides are withdrawn once the hold has passed
        feed.load(3e9)
        got = wait_for(recs, lambda ms: {r.prefix for r in decoded(ms) if r.action == "WITHDRAW"} >= added, timeout=120)
        withdraws = [r for r in decoded(got) if r.action == "WITHDRAW"]
        assert {r.reason for r in withdraws} == {"RELEASE"}
        assert min(r.generated_at for r in withdraws) >= min(r.generated_at for r in adds) + HOLD_S
        assert svc.health() == (True, "ok")
    finally:
        svc.stop()
        recs.close()
        sums.close()


def test_a_crashing_cycle_task_fails_health_and_is_counted(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    """faust restarts a crashed agent by itself; health must still go bad at the first crash
    (before, the cycle task crash-looped for minutes while /healthz said OK)."""
    feed = Feed(kafka_settings)
    feed.network()
    svc = start(kafka_settings, tmp_path / "a", f"ap-{uuid.uuid4().hex[:6]}")
    try:
        assert svc.pilot is not None and svc.health() == (True, "ok")

        async def crash(partition: int) -> None:  # the fault: what an int64 overflow did
            raise OverflowError("Python int too large to convert to C long")

        svc.pilot.cycle = crash  # type: ignore[method-assign]  # the tick agent calls pilot.cycle
        deadline = time.time() + 60
        while time.time() < deadline and svc.health()[0]:
            time.sleep(0.2)
        assert svc.health() == (
            False,
            "task crashed: ap-cycle: OverflowError: Python int too large to convert to C long",
        )
        crashes = svc.metrics.registry.get_sample_value("netpilot_autopilot_task_crashes_total", {"task": "ap-cycle"})
        assert crashes is not None and crashes >= 1
    finally:
        svc.stop()


def test_run_command_validates_and_dumps_its_configuration(tmp_path: Path) -> None:
    import subprocess
    import sys

    cfg = tmp_path / "netpilot.yaml"
    cfg.write_text("autopilot:\n  demand_window_s: 60\n  policy: {mode: suggest, cycle_s: 15}\n")
    out = subprocess.run(
        [sys.executable, "-m", "netpilot.cli", "autopilot", "run", "--config", str(cfg), "--dump"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert '"demand_window_s": 60.0' in out.stdout and '"mode": "suggest"' in out.stdout
    cfg.write_text("autopilot:\n  policy: {cycle_s: -1}\n")
    bad = subprocess.run(
        [sys.executable, "-m", "netpilot.cli", "autopilot", "run", "--config", str(cfg), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "policy.cycle_s" in bad.stderr
