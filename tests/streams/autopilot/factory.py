"""Compact PoP descriptions for the planner tests (plain data in, Snapshot out)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from streams.autopilot.model import LinkState, Snapshot, SnapshotBuilder, Thresholds

T0 = 1_767_225_600.0
"""2026-01-01T00:00:00Z: cycle i of a test runs at T0 + 30 * i."""

Route = str | tuple[str, Mapping[str, Any]]


def link(link_id: str, capacity: float = 10e9, rate: float | None = None, **kw: Any) -> LinkState:
    thresholds = kw.pop("thresholds", None)
    return LinkState(
        link_id=link_id,
        router=kw.pop("router", link_id.split(":")[0]),
        capacity_bps=capacity,
        rate_bps=rate,
        thresholds=Thresholds(**thresholds) if thresholds else Thresholds(),
        **kw,
    )


def snapshot(
    links: Sequence[LinkState],
    routes: Mapping[str, Sequence[Route]],
    demand: Mapping[str, Mapping[str, float]],
    *,
    pop: str = "ams1",
    watermarks: Mapping[str, float] | None = None,
) -> Snapshot:
    b = SnapshotBuilder(pop)
    for l in links:
        b.add_link(l)
    for link_id, entries in routes.items():
        for entry in entries:
            prefix, attrs = (entry, {}) if isinstance(entry, str) else entry
            b.add_route(link_id, prefix, **attrs)
    for link_id, per_prefix in demand.items():
        for prefix, rate in per_prefix.items():
            b.add_demand(prefix, link_id, rate, samples=max(1, int(rate / 1e6)))
    for name, ts in (watermarks or {}).items():
        b.watermark(name, ts)
    return b.build()


NATIVE = {"local_pref": 200}
"""Route attributes that win the best-path selection against the default (100)."""
