"""The exporter's view of the world: latest value per link and per PoP, no history.

Pure and Kafka-free: ``apply_*`` take decoded wire messages; the collector reads a
consistent snapshot under the lock. Sizes are bounded by the inventory (links, PoPs) and
by the compacted recommendations and applied-overrides topics (one entry per PoP and prefix).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from netpilot.wire.autopilot import CycleSummary, Recommendation
from netpilot.wire.injector import AppliedOverride
from netpilot.wire.links import LinkInventory, LinkUtilisation


@dataclass(frozen=True)
class LinkView:
    pop: str
    link_id: str
    peer_type: str
    capacity_bps: float | None
    utilisation: float | None
    counter_bps: float | None
    flow_bps: float | None
    coverage: float | None
    updated: float | None
    """Wall-clock seconds of the last utilisation message (None: inventory only)."""


@dataclass(frozen=True)
class PopView:
    pop: str
    active_overrides: int | None
    detoured_bps: float | None
    fail_static: bool | None
    cycle_time: float | None
    active_recommendations: int
    applied_overrides: int = 0
    """Overrides the PoP's routers hold (read back by the injector)."""
    applied_confirmed_at: float | None = None
    """The newest ``confirmed_at`` among them (None: nothing applied)."""


@dataclass
class ExporterState:
    inventory: dict[tuple[str, str], LinkInventory] = field(default_factory=dict)
    utilisation: dict[tuple[str, str], tuple[LinkUtilisation, float]] = field(default_factory=dict)
    cycles: dict[str, CycleSummary] = field(default_factory=dict)
    recommendations: dict[tuple[str, str], Recommendation] = field(default_factory=dict)
    applied: dict[tuple[str, str], AppliedOverride] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def apply_inventory(self, key: str, msg: LinkInventory | None) -> None:
        pop, _, link_id = key.partition("|")
        with self._lock:
            if msg is None:  # tombstone: the link is gone, stop exporting it
                self.inventory.pop((pop, link_id), None)
                self.utilisation.pop((pop, link_id), None)
            else:
                self.inventory[(msg.pop, msg.link_id)] = msg

    def apply_utilisation(self, msg: LinkUtilisation, now: float) -> None:
        with self._lock:
            key = (msg.pop, msg.link_id)
            prev = self.utilisation.get(key)
            if prev is None or prev[0].window_start <= msg.window_start:  # ignore late windows
                self.utilisation[key] = (msg, now)

    def apply_cycle(self, msg: CycleSummary) -> None:
        with self._lock:
            prev = self.cycles.get(msg.pop)
            if prev is None or prev.generated_at <= msg.generated_at:
                self.cycles[msg.pop] = msg

    def apply_recommendation(self, key: str, msg: Recommendation | None) -> None:
        pop, _, prefix = key.partition("|")
        with self._lock:
            if msg is None or msg.action == "WITHDRAW":
                self.recommendations.pop((pop, prefix), None)
            else:
                self.recommendations[(msg.pop, msg.prefix)] = msg

    def apply_applied(self, key: str, msg: AppliedOverride | None) -> None:
        pop, _, prefix = key.partition("|")
        with self._lock:
            if msg is None:  # tombstone: no router holds it any more
                self.applied.pop((pop, prefix), None)
            else:
                self.applied[(msg.pop, msg.prefix)] = msg

    def links(self, now: float, stale_after_s: float) -> list[LinkView]:
        with self._lock:
            keys = set(self.inventory) | set(self.utilisation)
            out = []
            for key in sorted(keys):
                inv = self.inventory.get(key)
                u, seen = self.utilisation.get(key, (None, None))
                if u is not None and seen is not None and now - seen > stale_after_s:
                    u = None  # stale rates are worse than none on a dashboard
                if inv is None and u is None:
                    continue
                out.append(
                    LinkView(
                        pop=key[0],
                        link_id=key[1],
                        peer_type=inv.peer_type if inv else "",
                        capacity_bps=inv.capacity_bps if inv else (u.capacity_bps if u else None),
                        utilisation=u.utilisation if u else None,
                        counter_bps=u.counter_bps if u else None,
                        flow_bps=u.flow_bps if u else None,
                        coverage=u.coverage if u else None,
                        updated=seen if u else None,
                    )
                )
            return out

    def projections(self) -> list[tuple[str, str, float, bool]]:
        """(pop, link_id, projection error, misprojected) from each PoP's last cycle summary."""
        with self._lock:
            return [
                (pop, link, err, link in c.misprojected_links)
                for pop, c in sorted(self.cycles.items())
                for link, err in sorted(c.projection_error.items())
            ]

    def pops(self, now: float) -> list[PopView]:
        with self._lock:
            active: dict[str, int] = {}
            for (pop, _prefix), r in self.recommendations.items():
                if r.valid_until > now:
                    active[pop] = active.get(pop, 0) + 1
            applied: dict[str, int] = {}
            confirmed: dict[str, float] = {}
            for (pop, _prefix), a in self.applied.items():
                applied[pop] = applied.get(pop, 0) + 1
                confirmed[pop] = max(confirmed.get(pop, a.confirmed_at), a.confirmed_at)
            names = sorted(set(self.cycles) | set(active) | set(applied) | {k[0] for k in self.inventory})
            out = []
            for pop in names:
                c = self.cycles.get(pop)
                out.append(
                    PopView(
                        pop,
                        c.active_overrides if c else None,
                        c.detoured_bps if c else None,
                        c.fail_static if c else None,
                        c.generated_at if c else None,
                        active.get(pop, 0),
                        applied.get(pop, 0),
                        confirmed.get(pop),
                    )
                )
            return out
