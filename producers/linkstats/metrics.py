"""Metrics of the SNMP poller (``netpilot_snmp_*``). Labels are routers and bounded reasons."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from netpilot.obs.metrics import metrics_for
from netpilot.obs.service import Errors

FAILURE_REASONS = ("timeout", "auth", "agent-error", "pdu-error", "unknown-interface", "publish")


@dataclass(frozen=True)
class SnmpMetrics:
    polls: Counter
    failures: Counter
    agent_up: Gauge
    poll_duration: Histogram
    poll_lateness: Histogram
    interfaces: Gauge
    stats_published: Counter
    resets: Counter
    wraps: Counter
    inventory_reloads: Counter
    inventory_errors: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> SnmpMetrics:
        m = metrics_for("snmp", registry)
        out = cls(
            polls=m.counter("polls_total", "Successful polls", ["router"]),
            failures=m.counter("poll_failures_total", "Failed polls by reason", ["router", "reason"]),
            agent_up=m.gauge("agent_up", "1 if the last poll of the router succeeded", ["router"]),
            poll_duration=m.histogram("poll_duration_seconds", "Time to poll one router", ["router"]),
            poll_lateness=m.histogram(
                "poll_lateness_seconds",
                "How late a poll started against its schedule",
                buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
            ),
            interfaces=m.gauge("interfaces", "Interfaces polled", ["router"]),
            stats_published=m.counter("stats_published_total", "link-stats messages produced"),
            resets=m.counter(
                "counter_resets_total",
                "Intervals without a rate (restart, discontinuity, implausible delta)",
                ["router"],
            ),
            wraps=m.counter("counter_wraps_total", "64-bit wraps unrolled", ["router"]),
            inventory_reloads=m.counter("inventory_reloads_total", "Inventory changes taken into use"),
            inventory_errors=m.counter(
                "inventory_errors_total", "Inventory changes rejected (invalid file or credentials)"
            ),
        )
        m.service(
            processed={"polls": out.polls, "link-stats": out.stats_published},
            errors=[Errors(out.failures), Errors(out.inventory_errors, "inventory-rejected")],
            duration=out.poll_duration,
        )
        return out

    def init_router(self, router: str) -> None:
        """Create every labelled series up front so dashboards see zeros, not gaps."""
        self.polls.labels(router)
        self.resets.labels(router)
        self.wraps.labels(router)
        for reason in FAILURE_REASONS:
            self.failures.labels(router, reason)
