"""The injector's metrics: ``netpilot_injector_*``."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from netpilot.kafka.deadletters import REASONS as DECODE_REASONS
from netpilot.obs.metrics import metrics_for
from netpilot.obs.service import Errors
from sinks.bgp.desired import REFUSALS, SKIPS


@dataclass(frozen=True)
class InjectorMetrics:
    messages: Counter
    refused: Counter
    skipped: Gauge
    dead_letters: Counter
    announces: Counter
    withdraws: Counter
    desired: Gauge
    announced: Gauge
    confirmed: Gauge
    session_up: Gauge
    readback_errors: Counter
    speaker_restarts: Counter
    confirm_seconds: Histogram
    reconcile_seconds: Histogram


def injector_metrics(registry: CollectorRegistry) -> InjectorMetrics:
    m = metrics_for("injector", registry)
    out = InjectorMetrics(
        messages=m.counter("messages_total", "Kafka messages applied to the injector's state", ["topic"]),
        refused=m.counter("refused_total", "Recommendations refused (and dead-lettered)", ["reason"]),
        skipped=m.gauge("skipped_overrides", "Valid overrides not announced now, by why", ["pop", "why"]),
        dead_letters=m.counter("dead_letters_total", "Messages sent to dead letters", ["reason"]),
        announces=m.counter("announces_total", "Routes announced to a router", ["pop"]),
        withdraws=m.counter("withdraws_total", "Routes withdrawn from a router", ["pop"]),
        desired=m.gauge("desired_overrides", "Overrides the injector wants in place", ["pop"]),
        announced=m.gauge("announced_overrides", "Overrides announced (per PoP, all its routers)", ["pop"]),
        confirmed=m.gauge("confirmed_overrides", "Overrides a router's RIB confirms", ["pop"]),
        session_up=m.gauge("bgp_session_up", "1 while the iBGP session to the router is established", ["router"]),
        readback_errors=m.counter("readback_errors_total", "Failed RIB read-backs", ["router"]),
        speaker_restarts=m.counter("speaker_restarts_total", "ExaBGP restarts after it died"),
        confirm_seconds=m.histogram(
            "confirm_seconds",
            "From the recommendation's generation to the router confirming the route",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
        ),
        reconcile_seconds=m.histogram("reconcile_duration_seconds", "One reconcile pass"),
    )
    for reason in REFUSALS:  # from the start at 0: rate() and alerts see the first one
        out.refused.labels(reason)
        out.dead_letters.labels(reason)
    for reason in DECODE_REASONS:
        out.dead_letters.labels(reason)
    _ = SKIPS
    # dead letters hold the refusals and the undecodable messages (refused alone would miss those)
    m.service(
        processed={"messages": out.messages, "announces": out.announces, "withdraws": out.withdraws},
        errors=[Errors(out.dead_letters), Errors(out.readback_errors, "readback")],
        duration=out.reconcile_seconds,
    )
    return out
