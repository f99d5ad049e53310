"""The projection check (docs/autopilot-design.md §5.5, the misprojection alarm): what a
cycle expected against what the counters show next, and the alarm after it stays off for
misprojection_after_s."""

from __future__ import annotations

import pytest

from streams.autopilot.explain import summary
from streams.autopilot.planner import plan
from streams.autopilot.policy import Policy
from streams.autopilot.state import PlannerState
from tests.streams.autopilot.factory import NATIVE, T0, link, snapshot
from tests.streams.autopilot.test_planner import A, B, overloaded_pop

DEMAND = {f"198.51.{100 + i}.0/24": 1e9 for i in range(5)}


def _cycles(policy: Policy, snap_at, n: int):  # snap_at(i) -> Snapshot
    state, plans = PlannerState(), []
    for i in range(n):
        p = plan(snap_at(i), state, policy, T0 + 30 * i)
        plans.append(p)
        state = p.state
    return plans


def test_overrides_not_applied_in_suggest_mode_raise_the_alarm_after_five_minutes(policy: Policy) -> None:
    # A at 94 %: one /24 moved, projected 84 %; nobody applies it, the counters stay at 94 %.
    plans = _cycles(policy, lambda i: overloaded_pop(), 13)
    assert plans[0].report.projection_error == {}  # nothing expected yet
    assert plans[1].report.projection_error[A] == pytest.approx(0.94 - 0.84)
    assert plans[1].report.projection_error[B] == pytest.approx(0.2 - 0.3)
    assert plans[1].state.misprojected_since == {A: T0 + 30, B: T0 + 30}
    assert [p.report.misprojected for p in plans[:11]] == [()] * 11  # T0+30 .. T0+300: < 5 min
    assert plans[11].report.misprojected == (A, B)  # T0+330: 300 s after the first miss
    s = summary(plans[11])
    assert s.misprojected_links == (A, B) and s.projection_error[A] == pytest.approx(0.1)


def test_applied_overrides_match_the_projection(policy: Policy) -> None:
    def snap(i: int):
        if i == 0:
            return overloaded_pop()
        # the actuator applied the move: 1 Gbps left A for B, and the flows show it on B
        on_a = {p: r for p, r in DEMAND.items() if p != "198.51.100.0/24"}
        return snapshot(
            [link(A, rate=8.4e9, peer_type="pni"), link(B, rate=3e9)],
            {A: [(p, NATIVE) for p in DEMAND], B: list(DEMAND)},
            {A: on_a, B: {"198.51.100.0/24": 1e9}},
        )

    plans = _cycles(policy, snap, 15)
    assert plans[0].by_action("ADD")[0].prefix == "198.51.100.0/24"
    for p in plans[1:]:
        assert all(abs(e) <= 0.05 for e in p.report.projection_error.values()), p.report.projection_error
        assert p.report.misprojected == () and p.state.misprojected_since == {}


def test_observe_mode_expects_the_projection_without_overrides() -> None:
    observe = Policy(mode="observe", split_enabled=False)
    plans = _cycles(observe, lambda i: overloaded_pop(), 15)
    assert plans[0].by_action("ADD")  # it still says what it would do
    assert plans[-1].report.projection_error == {A: pytest.approx(0), B: pytest.approx(0)}
    assert plans[-1].report.misprojected == ()


def test_a_miss_that_ends_resets_the_clock_and_state_round_trips(policy: Policy) -> None:
    plans = _cycles(policy, lambda i: overloaded_pop(), 5)
    state = PlannerState.from_dict(plans[-1].state.to_dict())  # a restarted worker
    assert state.misprojected_since == {A: T0 + 30, B: T0 + 30}
    assert state.expected_util == plans[-1].state.expected_util
    # within 5 % again (a tighter policy would call 0.05 a miss; the default does not)
    calm = plan(overloaded_pop(a_rate=8.5e9, b_rate=2.9e9), state, policy, T0 + 150)
    assert calm.state.misprojected_since == {} and calm.report.misprojected == ()


def test_fail_static_cycles_keep_the_verdicts(policy: Policy) -> None:
    plans = _cycles(policy, lambda i: overloaded_pop(), 12)
    assert plans[-1].report.misprojected == (A, B)
    stale = overloaded_pop()
    stale = type(stale)(**{**stale.__dict__, "watermarks": {"counters": T0, "flows": T0 + 360}})
    p = plan(stale, plans[-1].state, policy, T0 + 360)
    assert p.report.fail_static and p.report.projection_error == {}
    assert p.report.misprojected == (A, B) and p.state.misprojected_since == plans[-1].state.misprojected_since
