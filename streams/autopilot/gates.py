"""Freshness and sanity gates (docs/autopilot-design.md §5.3 step 0, after Espresso).

A failing gate does not raise: it puts the cycle in fail-static (no new ADDs, existing
overrides refreshed) and names the reason in the cycle summary, so an operator sees why.
"""

from __future__ import annotations

import numpy as np

from streams.autopilot.model import Snapshot
from streams.autopilot.policy import Policy
from streams.autopilot.state import InputTotals, PlannerState


def total_rate(snapshot: Snapshot) -> float:
    """PoP egress: counter rates where known, the demand seen on the link otherwise."""
    observed = np.bincount(snapshot.demand.link, weights=snapshot.demand.rate_bps, minlength=len(snapshot.links))
    return float(
        sum(link.rate_bps if link.rate_bps is not None else observed[i] for i, link in enumerate(snapshot.links))
    )


def totals(snapshot: Snapshot, now: float) -> InputTotals:
    return InputTotals(
        at=now,
        total_rate_bps=total_rate(snapshot),
        usable_bps={l.link_id: l.usable_bps for l in snapshot.links},
        up={l.link_id: l.up for l in snapshot.links},
    )


def stale_inputs(snapshot: Snapshot, policy: Policy, now: float) -> list[str]:
    """Inputs whose newest data is older than ``stale_after_cycles`` cycles."""
    limit = policy.stale_after_s
    stale = [f"{name}:{now - ts:.0f}s" for name, ts in sorted(snapshot.watermarks.items()) if now - ts > limit]
    stale += [
        f"counters:{l.link_id}:{now - l.updated_at:.0f}s"
        for l in snapshot.links
        if l.updated_at is not None and now - l.updated_at > limit
    ]
    return stale


def implausible_inputs(snapshot: Snapshot, current: InputTotals, state: PlannerState, policy: Policy) -> list[str]:
    bad = [
        f"rate>capacity:{l.link_id}"
        for l in snapshot.links
        if l.rate_bps is not None and l.rate_bps > l.usable_bps * policy.max_rate_over_capacity
    ]
    # Counters cannot exceed what a link carries, but flow demand can (flows are sampled at
    # ingress, before the egress drops): a surge to 1.5x capacity is the overload the planner
    # is for. Demand many times the capacity is bad flow data (garbage or saturated sums
    # upstream), and acting on it would move healthy traffic off a healthy link.
    observed = np.bincount(snapshot.demand.link, weights=snapshot.demand.rate_bps, minlength=len(snapshot.links))
    bad += [
        f"demand>capacity:{l.link_id}"
        for i, l in enumerate(snapshot.links)
        if not observed[i] <= l.usable_bps * policy.max_demand_over_capacity  # also catches NaN
    ]
    prev = state.previous_inputs
    if prev is None:
        return bad
    if prev.total_rate_bps > 0:
        change = abs(current.total_rate_bps - prev.total_rate_bps) / prev.total_rate_bps
        if change > policy.max_total_rate_change:
            bad.append(f"total_rate:{prev.total_rate_bps:.4g}->{current.total_rate_bps:.4g}")
    for link_id, usable in sorted(current.usable_bps.items()):
        before = prev.usable_bps.get(link_id)
        # A capacity change with the same oper status is a config or polling error, not a
        # member going down: do not act on it this cycle.
        if before is not None and before != usable and prev.up.get(link_id) == current.up[link_id]:
            bad.append(f"capacity:{link_id}:{before:.4g}->{usable:.4g}")
    return bad
