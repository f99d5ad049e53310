"""A PoP whose cycle raises is counted and the other PoPs still plan; health fails after
``unhealthy_after_cycles`` failures in a row, or when no cycle runs although ticks were
sent. The worker's Pilot runs on dict tables and topics that record what is sent."""

from __future__ import annotations

import asyncio
from typing import Any

from netpilot import catalog
from netpilot.kafka.partitioning import partition_for
from netpilot.obs.metrics import sample_value
from netpilot.wire.autopilot import CycleSummary
from netpilot.wire.links import LinkInventory
from streams.autopilot.metrics import AutopilotMetrics
from streams.autopilot.policy import Policy
from streams.autopilot.settings import AutopilotSettings
from streams.autopilot.worker import TABLES, AutopilotApp, Pilot
from tests.streams.autopilot.test_inputs import T0, overloaded_pop


class Topic:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, **kw: Any) -> None:
        self.sent.append(kw)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def pilot() -> tuple[Pilot, AutopilotMetrics, Clock]:
    aa = AutopilotApp(
        app=None,  # type: ignore[arg-type]
        inventory=None,  # type: ignore[arg-type]
        routes=None,  # type: ignore[arg-type]
        link_stats=None,  # type: ignore[arg-type]
        aggregates=None,  # type: ignore[arg-type]
        ticks=None,  # type: ignore[arg-type]
        recommendations=Topic(),  # type: ignore[arg-type]
        summaries=Topic(),  # type: ignore[arg-type]
        dead_letters=Topic(),  # type: ignore[arg-type]
        tables={name: {} for name in TABLES},  # type: ignore[misc]
    )
    metrics = AutopilotMetrics.create()
    p = Pilot(aa, AutopilotSettings(policy=Policy(mode="suggest")), metrics, clock=lambda: T0 + 121, loaded=True)
    p.monotonic = mono = Clock()
    p.pops["ams1"] = overloaded_pop()
    fra = p.inputs("fra1")
    fra.set_link("t1", LinkInventory(pop="fra1", link_id="t1", router="r1", capacity_bps=10e9))
    return p, metrics, mono


def run_cycle(p: Pilot) -> None:
    for part in sorted({partition_for(pop, catalog.FLOWS.partitions) for pop in p.pops}):
        asyncio.run(p.cycle(part))


def summaries(p: Pilot) -> list[str]:
    return [CycleSummary.model_validate_json(m["value"]).pop for m in p.aa.summaries.sent]  # type: ignore[attr-defined]


def test_a_failing_pop_is_counted_the_others_plan_and_health_fails_after_n_cycles() -> None:
    p, metrics, _ = pilot()
    p.aa.tables["ap-state"]["fra1"] = b"{corrupt"  # a poisoned state: every fra1 cycle raises
    value = lambda name, pop: sample_value(metrics.registry, f"netpilot_autopilot_{name}", {"pop": pop})  # noqa: E731
    for n in (1, 2):
        run_cycle(p)
        assert p.health() == (True, "ok")  # one or two failures may be transient
        assert value("cycle_errors_total", "fra1") == n and value("failed_cycles", "fra1") == n
    run_cycle(p)
    ok, why = p.health()
    assert not ok and why.startswith("pop fra1: 3 cycles failed in a row, last: JSONDecodeError")
    assert value("cycle_errors_total", "fra1") == 3
    # ams1 planned every cycle, with recommendations, although fra1 failed before or after it
    assert summaries(p) == ["ams1"] * 3
    done = sum(
        sample_value(metrics.registry, "netpilot_autopilot_cycles_total", {"pop": "ams1", "outcome": o})
        for o in ("ok", "fail-static")
    )
    assert done == 3 and p.aa.recommendations.sent  # type: ignore[attr-defined]
    assert value("cycle_errors_total", "ams1") == 0
    # the poison goes away: the next good cycle makes the PoP (and health) good again
    del p.aa.tables["ap-state"]["fra1"]
    run_cycle(p)
    assert p.health() == (True, "ok") and value("failed_cycles", "fra1") == 0
    assert value("cycle_errors_total", "fra1") == 3


def test_no_cycle_although_ticks_were_sent_fails_health() -> None:
    p, _, mono = pilot()
    p.ticks_sent()
    mono.t += 89  # 3 periods of 30 s: not yet
    assert p.health() == (True, "ok")
    mono.t += 2
    ok, why = p.health()
    assert not ok and why == "no cycle ran for 91 s although ticks were sent"
    run_cycle(p)
    assert p.health() == (True, "ok")
