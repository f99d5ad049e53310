"""The end of a cycle: ranks, the next state and the cycle report (split from planner.py).

The planner hands over a :class:`CycleOutcome` (what its cycle decided and measured) and
:func:`finish` turns it into the :class:`~streams.autopilot.model.Plan`; this module does not
know the planner's internals (and does not import it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np

from streams.autopilot import trend
from streams.autopilot.model import CycleReport, Plan, PlanItem
from streams.autopilot.policy import Policy
from streams.autopilot.state import InputTotals, Override, PlannerState


@dataclass(frozen=True, slots=True)
class KeptOverride:
    """An override kept in place to the end of the cycle (refreshed into the next state)."""

    in_place: Override
    """The override as the previous state held it."""
    rate: float
    """Its demand this cycle (bps)."""
    natives: tuple[str, ...]
    """The native links of its route now (empty when the route is gone)."""


@dataclass(frozen=True, slots=True, eq=False)
class CycleOutcome:
    """Everything :func:`finish` needs from one planner cycle.

    Per-link arrays are indexed like ``link_ids`` (the snapshot's links, in order).
    """

    pop: str
    now: float
    policy: Policy
    previous: PlannerState
    """The state the cycle started from."""
    diff_rejected: bool
    """This is the fail-static redo of a cycle whose diff was over the limits."""
    items: Sequence[PlanItem]
    """Recommendations in decision order, not yet ranked."""
    kept: Mapping[str, KeptOverride]
    """prefix text -> override kept in place."""
    cooldowns: Mapping[str, float]
    """prefix text -> end of its cooldown, for the next state."""
    current: InputTotals
    link_ids: tuple[str, ...]
    cap: np.ndarray
    """Usable capacity (bps)."""
    up: np.ndarray
    has_counter: np.ndarray
    hi: np.ndarray
    """Trigger threshold (fraction of capacity)."""
    u0_load: np.ndarray
    """Load with no override in place (bps)."""
    loads: np.ndarray
    """Projected load with this cycle's overrides (bps)."""
    u_actual: np.ndarray
    """Measured utilisation (fraction)."""
    overloaded: tuple[int, ...]
    """Indices of the overloaded links, by decreasing excess."""
    stale: tuple[str, ...]
    implausible: tuple[str, ...]
    fail_static: bool
    moves_lower_bound: int = 0
    """The fewest moves that could relieve the overloads (0: nothing to relieve)."""


def cycle_id(pop: str, now: float) -> str:
    return f"{datetime.fromtimestamp(now, UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}#pop={pop}"


def finish(c: CycleOutcome) -> Plan:
    items = _ranked(c.items)
    now, policy = c.now, c.policy
    overrides: dict[str, Override] = {}
    for prefix, active in sorted(c.kept.items()):
        prev = active.in_place
        overrides[prefix] = replace(
            prev,
            valid_until=now + policy.ttl,
            last_refreshed=now,
            rate_bps=float(active.rate),
            from_links=active.natives or prev.from_links,
        )
    for item in items:
        if item.action == "ADD":
            overrides[item.prefix] = Override(
                prefix=item.prefix,
                to_link=item.to_link,
                from_links=item.from_links,
                created_at=now,
                hold_until=item.hold_until,
                valid_until=item.valid_until,
                rate_bps=item.rate_bps,
                reason=item.reason,
                split_from=item.split_from,
                last_refreshed=now,
            )
    ids, cap, loads = c.link_ids, c.cap, c.loads
    util_no_override = {ids[l]: float(c.u0_load[l] / cap[l]) for l in range(len(ids))}
    util_projected = {ids[l]: float(loads[l] / cap[l]) for l in range(len(ids))}
    error, since, misprojected = _projection_check(c)
    # What the counters should show next cycle: in suggest mode the overrides are meant to
    # be in place; in observe mode nobody applies them.
    expected = util_projected if policy.mode == "suggest" else util_no_override
    state = PlannerState(
        overrides=dict(sorted(overrides.items())),
        cooldowns=dict(sorted(c.cooldowns.items())),
        previous_inputs=c.current,
        cycle=c.previous.cycle + 1,
        expected_util=dict(sorted(expected.items())),
        misprojected_since=since,
        # Fail-static and kill-switch cycles read inputs nobody trusts or plans nothing:
        # they leave the release window as it was.
        u0_history=c.previous.u0_history
        if c.fail_static or policy.kill_switch
        else trend.advance(c.previous.u0_history, ids, c.u0_load / cap, policy.release_cycles),
    )
    unresolved = {ids[l]: float(loads[l] - c.hi[l] * cap[l]) for l in c.overloaded if loads[l] > c.hi[l] * cap[l]}
    counts = {a: sum(1 for i in items if i.action == a) for a in ("ADD", "REFRESH", "WITHDRAW")}
    report = CycleReport(
        overloaded=tuple(sorted(ids[l] for l in c.overloaded)),
        unresolved_bps=unresolved,
        adds=counts["ADD"],
        refreshes=counts["REFRESH"],
        withdraws=counts["WITHDRAW"],
        active_overrides=len(overrides),
        detoured_bps=float(sum(o.rate_bps for o in overrides.values())),
        stale=c.stale,
        implausible=c.implausible,
        fail_static=c.fail_static and not policy.kill_switch,
        kill_switch=policy.kill_switch,
        diff_rejected=c.diff_rejected,
        util_no_override=util_no_override,
        util_projected=util_projected,
        util_actual={ids[l]: float(c.u_actual[l]) for l in range(len(ids))},
        projection_error=error,
        misprojected=misprojected,
        trigger={ids[l]: float(c.hi[l]) for l in range(len(ids))},
        moves_lower_bound=c.moves_lower_bound,
        moves_ratio=round(counts["ADD"] / c.moves_lower_bound, 4) if c.moves_lower_bound else None,
    )
    return Plan(
        pop=c.pop, cycle_id=cycle_id(c.pop, now), now=now, mode=policy.mode, items=items, report=report, state=state
    )


def _projection_check(c: CycleOutcome) -> tuple[dict[str, float], dict[str, float], tuple[str, ...]]:
    """Projection accuracy (docs/autopilot-design.md §5.5, Edge Fabric's alarm): per link
    with counters, the actual utilisation minus what the previous cycle expected, and the
    links where it has stayed beyond ``misprojection_threshold`` for ``misprojection_after_s``.

    A misprojected link means the model is wrong (demand not explained by the flows, a
    route that does not carry what it should) or, in suggest mode, that the overrides are
    not being applied. Stale or implausible inputs prove nothing: their cycles keep the
    previous verdicts as they were.
    """
    prev = c.previous
    if c.fail_static or c.policy.kill_switch:
        return (
            {},
            dict(prev.misprojected_since),
            tuple(sorted(l for l, t in prev.misprojected_since.items() if c.now - t >= c.policy.misprojection_after_s)),
        )
    error: dict[str, float] = {}
    since: dict[str, float] = {}
    for l, link_id in enumerate(c.link_ids):
        want = prev.expected_util.get(link_id)
        if want is None or not c.has_counter[l] or not c.up[l]:
            continue
        error[link_id] = round(float(c.u_actual[l]) - want, 6)
        if abs(error[link_id]) > c.policy.misprojection_threshold:
            since[link_id] = prev.misprojected_since.get(link_id, c.now)
    bad = tuple(sorted(l for l, t in since.items() if c.now - t >= c.policy.misprojection_after_s))
    return error, dict(sorted(since.items())), bad


def _ranked(items: Sequence[PlanItem]) -> tuple[PlanItem, ...]:
    """Drop a WITHDRAW superseded by an ADD of the same prefix in the same cycle (re-placed
    after its alternate failed or its TTL expired: one ADD says it all), then number each
    action's items in decision order."""
    added = {i.prefix for i in items if i.action == "ADD"}
    kept = [i for i in items if not (i.action == "WITHDRAW" and i.prefix in added)]
    seen = {"ADD": 0, "REFRESH": 0, "WITHDRAW": 0}
    out = []
    for item in kept:
        seen[item.action] += 1
        out.append(replace(item, rank=seen[item.action]))
    return tuple(out)
