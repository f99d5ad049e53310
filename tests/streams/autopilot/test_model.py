from __future__ import annotations

import math

import pytest

from streams.autopilot.errors import ScenarioError
from streams.autopilot.model import LinkState, SnapshotBuilder
from streams.autopilot.planner import plan
from streams.autopilot.policy import Policy
from streams.autopilot.state import PlannerState


def test_builder_interns_prefixes_and_refuses_bad_rows() -> None:
    b = SnapshotBuilder("ams1")
    b.add_link(LinkState("a", "r1", capacity_bps=10e9, rate_bps=1e9))
    b.add_route("a", "198.51.100.0/24")
    b.add_demand("198.51.100.0/24", "a", 5e8, samples=10)
    snap = b.build()
    assert len(snap.prefixes) == 1 and int(snap.routes.prefix[0]) == int(snap.demand.prefix[0]) == 0
    with pytest.raises(ScenarioError, match="unknown link 'b'"):
        b.add_route("b", "198.51.100.0/24")
    with pytest.raises(ScenarioError, match="rate must be a number >= 0"):
        b.add_demand("198.51.100.0/24", "a", math.nan)
    with pytest.raises(ScenarioError, match="listed twice"):
        b.add_link(LinkState("a", "r1", capacity_bps=1e9))
    with pytest.raises(ScenarioError, match="capacity_bps must be > 0"):
        b.add_link(LinkState("c", "r1", capacity_bps=0))
    with pytest.raises(ScenarioError, match="origin must be one of"):
        b.add_route("a", "192.0.2.0/24", origin="bgp")


def test_empty_pop_and_implausible_rate_plan_nothing() -> None:
    assert plan(SnapshotBuilder("x").build(), PlannerState(), Policy(), 0.0).items == ()
    b = SnapshotBuilder("x")
    b.add_link(LinkState("a", "r1", capacity_bps=1e9, rate_bps=2e9))  # twice its capacity
    p = plan(b.build(), PlannerState(), Policy(), 0.0)
    assert p.items == () and p.report.fail_static and p.report.implausible == ("rate>capacity:a",)


def test_usable_capacity_is_the_lower_of_configured_and_speed() -> None:
    assert LinkState("a", "r", capacity_bps=10e9, speed_bps=4e9).usable_bps == 4e9
    assert LinkState("a", "r", capacity_bps=10e9).usable_bps == 10e9
