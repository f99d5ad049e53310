"""A :class:`Plan` as wire messages: one Recommendation per item, one CycleSummary per cycle.

Kept apart from the planner so the planner stays free of wire/pydantic concerns and the
wire stays free of planner types; ``netpilot autopilot plan`` and the faust agent both
publish what this returns.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping

from netpilot.wire.autopilot import CycleSummary, LinkSide, Recommendation
from streams.autopilot.model import MAX_SAMPLES, LinkState, Plan, PlanItem, Snapshot
from streams.autopilot.policy import Policy

PLANNER_VERSION = "1"


def recommendations(plan: Plan, snapshot: Snapshot, policy: Policy) -> list[Recommendation]:
    links = {link.link_id: link for link in snapshot.links}
    controller: dict[str, object] = {
        "planner": PLANNER_VERSION,
        "input_watermarks": dict(sorted(snapshot.watermarks.items())),
    }
    hint: dict[str, object] = {
        "local_pref": policy.bgp_local_pref,
        "communities": list(policy.bgp_communities),
        "no_export": policy.bgp_no_export,
    }
    return [_recommendation(plan, item, links, hint, controller) for item in plan.items]


def summary(plan: Plan) -> CycleSummary:
    r = plan.report
    return CycleSummary(
        cycle_id=plan.cycle_id,
        pop=plan.pop,
        generated_at=plan.now,
        mode=plan.mode,
        overloaded_links=r.overloaded,
        unresolved_bps=dict(r.unresolved_bps),
        adds=r.adds,
        refreshes=r.refreshes,
        withdraws=r.withdraws,
        active_overrides=r.active_overrides,
        detoured_bps=r.detoured_bps,
        stale_inputs=r.stale,
        fail_static=r.fail_static,
        kill_switch=r.kill_switch,
        implausible_inputs=r.implausible,
        diff_rejected=r.diff_rejected,
        util_no_override=_rounded(r.util_no_override),
        util_projected=_rounded(r.util_projected),
        util_actual=_rounded(r.util_actual),
        projection_error=_rounded(r.projection_error),
        misprojected_links=r.misprojected,
        util_trigger=_rounded(r.trigger),
        moves_lower_bound=r.moves_lower_bound,
        moves_ratio=r.moves_ratio,
    )


def ci95(rate: float, samples: int) -> tuple[float, float] | None:
    """95 % interval of a sampled rate: relative error 1.96 * sqrt(1/n) (sflow.org,
    "Packet Sampling Basics"); None without samples."""
    if samples <= 0:
        return None
    err = 1.96 * math.sqrt(1.0 / samples)
    return max(0.0, rate * (1 - err)), rate * (1 + err)


def _recommendation(
    plan: Plan, item: PlanItem, links: Mapping[str, LinkState], hint: dict[str, object], controller: dict[str, object]
) -> Recommendation:
    src = links.get(item.from_link)
    dst = links.get(item.to_link)
    return Recommendation(
        id=hashlib.sha1(f"{plan.pop}|{item.prefix}|{item.to_link}".encode()).hexdigest(),
        cycle_id=plan.cycle_id,
        generated_at=plan.now,
        valid_until=item.valid_until,
        hold_until=item.hold_until,
        pop=plan.pop,
        action=item.action,
        mode=plan.mode,
        prefix=item.prefix,
        afi=item.afi,
        split_from=item.split_from,
        rate_bps=item.rate_bps,
        samples=min(item.samples, MAX_SAMPLES),
        rate_ci95_bps=ci95(item.rate_bps, item.samples),
        from_=LinkSide(
            link_id=item.from_link,
            router=src.router if src else None,
            peer_asn=src.peer_asn if src else None,
            peer_type=src.peer_type if src else None,
            util_projected_before=_r(item.from_before),
            util_projected_after=_r(item.from_after),
            ecmp_links=item.from_links if len(item.from_links) > 1 else (),
        ),
        to=LinkSide(
            link_id=item.to_link,
            router=dst.router if dst else None,
            peer_asn=dst.peer_asn if dst else None,
            peer_type=dst.peer_type if dst else None,
            next_hop=item.next_hop,
            route_prefix=item.route_prefix,
            as_path=item.as_path,
            util_projected_before=_r(item.to_before),
            util_projected_after=_r(item.to_after),
        ),
        thresholds=dict(item.thresholds),
        reason=item.reason,
        rank=item.rank,
        bgp_hint=hint if item.action != "WITHDRAW" else {},
        created_at=item.created_at,
        controller=controller,
    )


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _rounded(values: Mapping[str, float]) -> dict[str, float]:
    return {k: round(v, 6) for k, v in values.items()}
