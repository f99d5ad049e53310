"""Metrics of the autopilot worker: ``netpilot_autopilot_*`` (labels: PoP, action, reason only)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from netpilot.kafka.deadletters import REASONS
from netpilot.obs.metrics import metrics_for
from netpilot.obs.service import Errors


@dataclass(frozen=True)
class AutopilotMetrics:
    registry: CollectorRegistry
    cycles: Counter
    cycle_seconds: Histogram
    recommendations: Counter
    active_overrides: Gauge
    aggregate_rows: Counter
    misprojected_links: Gauge
    dead_letters: Counter
    cycle_errors: Counter
    failed_cycles: Gauge
    task_crashes: Counter
    restore_stalls: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> AutopilotMetrics:
        m = metrics_for("autopilot", registry)
        out = cls(
            registry=m.registry,
            cycles=m.counter("cycles_total", "planner cycles run, by outcome (ok, fail-static)", ["pop", "outcome"]),
            cycle_seconds=m.histogram("cycle_duration_seconds", "snapshot + plan + publish time of one PoP"),
            recommendations=m.counter("recommendations_total", "recommendations published", ["pop", "action"]),
            active_overrides=m.gauge("active_overrides", "overrides in place after the last cycle", ["pop"]),
            misprojected_links=m.gauge(
                "misprojected_links",
                "links whose actual utilisation has differed from "
                "the projection by > threshold for misprojection_after_s",
                ["pop"],
            ),
            aggregate_rows=m.counter("aggregate_rows_total", "flow-aggregates/1 rows taken as demand"),
            dead_letters=m.counter("dead_letters_total", "messages sent to dead letters", ["topic", "reason"]),
            cycle_errors=m.counter("cycle_errors_total", "PoP cycles that raised (the other PoPs still plan)", ["pop"]),
            failed_cycles=m.gauge("failed_cycles", "the PoP's cycles failed in a row (0 after a good one)", ["pop"]),
            task_crashes=m.counter(
                "task_crashes_total", "agents and timers that raised (health fails from the first)", ["task"]
            ),
            restore_stalls=m.counter(
                "restore_stalls_total",
                "table restores that stopped moving and were sought again (streams.restore_watch)",
            ),
        )
        m.service(
            processed={"cycles": out.cycles, "aggregate-rows": out.aggregate_rows},
            errors=[Errors(out.dead_letters, reasons=REASONS)],
            duration=out.cycle_seconds,
        )
        return out
