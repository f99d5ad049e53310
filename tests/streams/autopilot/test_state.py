"""Planner state survives a JSON round trip, so a restarted worker continues the same overrides."""

from __future__ import annotations

import json

import pytest

from streams.autopilot.errors import ScenarioError
from streams.autopilot.planner import plan
from streams.autopilot.policy import Policy
from streams.autopilot.state import PlannerState
from tests.streams.autopilot.factory import NATIVE, T0, link, snapshot


def _pop():
    demand = {f"198.51.{100 + i}.0/24": 1e9 for i in range(5)}
    return snapshot(
        [link("a", rate=9.4e9), link("b", rate=2e9)],
        {"a": [(p, NATIVE) for p in demand], "b": list(demand)},
        {"a": demand},
    )


def test_restart_from_serialised_state_continues_the_same_overrides() -> None:
    policy = Policy(mode="suggest", split_enabled=False)
    first = plan(_pop(), PlannerState(), policy, T0)
    assert first.by_action("ADD")
    stored = json.loads(json.dumps(first.state.to_dict()))  # what a faust table changelog keeps
    restarted = plan(_pop(), PlannerState.from_dict(stored), policy, T0 + 30)
    in_memory = plan(_pop(), first.state, policy, T0 + 30)
    assert restarted == in_memory
    assert [(i.action, i.prefix) for i in restarted.items] == [("REFRESH", a.prefix) for a in first.by_action("ADD")]
    refreshed = restarted.state.overrides[first.by_action("ADD")[0].prefix]
    assert refreshed.created_at == T0 and refreshed.hold_until == T0 + 300  # hold not restarted
    assert refreshed.valid_until == T0 + 30 + 90


def test_empty_and_bad_state() -> None:
    assert PlannerState.from_dict(None) == PlannerState()
    with pytest.raises(ScenarioError, match="version"):
        PlannerState.from_dict({"version": 99})
    with pytest.raises(ScenarioError, match="malformed"):
        PlannerState.from_dict({"version": 1, "overrides": [{"prefix": "x"}]})
