"""Metrics of the BMP collector (``netpilot_bmp_*``). Labels are bounded: message types,
reasons, session states."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from netpilot.obs.metrics import metrics_for
from netpilot.obs.service import Errors
from producers.routes.bmp.framing import PEER_DOWN_REASONS, TYPE_NAMES

MALFORMED = (
    "bad-version",
    "bad-length",
    "short-message",
    "unknown-type",
    "bad-bgp-header",
    "bad-open",
    "bad-update",
    "bad-tlv",
    "no-peer-up",
    "treat-as-withdraw",
)
IGNORED = ("other-policy", "adj-rib-out", "peer-type", "unmapped-peer", "family")
RESETS = ("bad-version", "bad-length", "replaced", "too-many-sessions", "inventory-change", "error")
SYNC_ENDS = ("eor", "quiet", "timeout", "hold-expired")


@dataclass(frozen=True)
class BmpMetrics:
    messages: Counter
    routes: Counter
    published: Counter
    malformed: Counter
    ignored: Counter
    peer_downs: Counter
    resets: Counter
    syncs: Counter
    sync_seconds: Histogram
    sessions: Gauge
    peers_up: Gauge
    rib_routes: Gauge
    deferred: Gauge
    publish_failures: Gauge
    inventory_reloads: Counter
    inventory_errors: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> BmpMetrics:
        m = metrics_for("bmp", registry)
        out = cls(
            messages=m.counter("messages_total", "BMP messages received, by type", ["type"]),
            routes=m.counter(
                "routes_total", "Prefixes received in route monitoring (of the configured policy)", ["action"]
            ),
            published=m.counter("published_total", "Records produced to the routes topic", ["kind"]),
            malformed=m.counter("malformed_total", "Malformed BMP/BGP messages (skipped), by reason", ["reason"]),
            ignored=m.counter("ignored_total", "Well-formed messages not used, by reason", ["reason"]),
            peer_downs=m.counter("peer_downs_total", "Peer Down messages, by reason", ["reason"]),
            resets=m.counter("session_resets_total", "BMP sessions closed by the collector, by reason", ["reason"]),
            syncs=m.counter("syncs_total", "Session syncs ended (and holds expired), by how", ["how"]),
            sync_seconds=m.histogram(
                "sync_seconds",
                "From a session's start to its sync end",
                buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600),
            ),
            sessions=m.gauge("sessions", "Router sessions, by state", ["state"]),
            peers_up=m.gauge("peers_up", "Monitored peers up (on connected sessions)"),
            rib_routes=m.gauge("rib_routes", "Routes held (every mapped peer's Adj-RIB-In)"),
            deferred=m.gauge("deferred_withdrawals", "Tombstones waiting for a syncing or held session"),
            publish_failures=m.gauge("publish_failures", "Records Kafka failed to take (the service then fails)"),
            inventory_reloads=m.counter("inventory_reloads_total", "Inventory changes taken into use"),
            inventory_errors=m.counter("inventory_errors_total", "Inventory changes rejected (invalid file)"),
        )
        for name in TYPE_NAMES.values():  # every series from the start: rate() sees the first one
            out.messages.labels(name)
        for action in ("announce", "withdraw"):
            out.routes.labels(action)
        for kind in ("route", "tombstone"):
            out.published.labels(kind)
        for reason in MALFORMED:
            out.malformed.labels(reason)
        for reason in IGNORED:
            out.ignored.labels(reason)
        for reason in (*PEER_DOWN_REASONS.values(), "other"):
            out.peer_downs.labels(reason)
        for reason in RESETS:
            out.resets.labels(reason)
        for how in SYNC_ENDS:
            out.syncs.labels(how)
        for state in ("syncing", "live", "down"):
            out.sessions.labels(state)
        # malformed, not resets too: a bad header is counted in both
        m.service(
            processed={"messages": out.messages, "routes": out.routes},
            errors=[Errors(out.malformed), Errors(out.inventory_errors, "inventory-rejected")],
            backlog=out.deferred,
        )
        return out
