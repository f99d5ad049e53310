"""Plans become wire messages that survive the JSON round trip the topics use."""

from __future__ import annotations

import pytest

from netpilot.wire.autopilot import CycleSummary, Recommendation
from streams.autopilot.explain import ci95, recommendations, summary
from streams.autopilot.planner import plan
from streams.autopilot.policy import Policy
from streams.autopilot.state import PlannerState
from tests.streams.autopilot.factory import NATIVE, T0, link, snapshot


def test_recommendation_and_summary_round_trip() -> None:
    snap = snapshot(
        [link("pr1:a", rate=9.5e9, peer_type="pni", peer_asn=64500), link("pr2:b", rate=1e9, peer_asn=64501)],
        {
            "pr1:a": [("198.51.100.0/24", NATIVE)],
            "pr2:b": [("198.51.100.0/22", {"as_path": (64501, 64500), "next_hop": "192.0.2.1"})],
        },
        {"pr1:a": {"198.51.100.0/24": 1e9}},
        watermarks={"flows": T0 - 5},
    )
    policy = Policy(mode="suggest", split_enabled=False)
    p = plan(snap, PlannerState(), policy, T0)
    (rec,) = recommendations(p, snap, policy)
    assert Recommendation.decode(rec.encode()) == rec
    assert rec.key() == "ams1|198.51.100.0/24" and rec.action == "ADD" and rec.mode == "suggest"
    assert rec.cycle_id == "2026-01-01T00:00:00Z#pop=ams1" and len(rec.id) == 40
    assert (rec.from_.link_id, rec.from_.peer_asn, rec.from_.peer_type) == ("pr1:a", 64500, "pni")
    assert (rec.to.link_id, rec.to.route_prefix, rec.to.next_hop, rec.to.as_path) == (
        "pr2:b",
        "198.51.100.0/22",
        "192.0.2.1",
        (64501, 64500),
    )
    assert rec.from_.util_projected_before == pytest.approx(0.95)
    assert rec.to.util_projected_after == pytest.approx(0.2)
    assert rec.bgp_hint == {"local_pref": 500, "communities": ["64496:666"], "no_export": True}
    assert rec.controller["input_watermarks"] == {"flows": T0 - 5}
    assert rec.rate_ci95_bps == pytest.approx(ci95(1e9, 1000))
    s = summary(p)
    assert CycleSummary.decode(s.encode()) == s
    assert s.overloaded_links == ("pr1:a",) and s.adds == 1 and s.detoured_bps == 1e9
    assert s.util_actual == {"pr1:a": 0.95, "pr2:b": 0.1} and s.util_projected["pr1:a"] == 0.85
    assert s.util_trigger == {"pr1:a": 0.9, "pr2:b": 0.9}
    ix = snapshot([link("pr1:a", rate=1e9, peer_type="ix"), link("pr2:b", rate=1e9, peer_type="transit")], {}, {})
    assert summary(plan(ix, PlannerState(), policy, T0)).util_trigger == {"pr1:a": 0.85, "pr2:b": 0.9}


def test_ci95_from_samples() -> None:
    assert ci95(1e9, 0) is None
    lo, hi = ci95(1e9, 400)  # 1.96 / sqrt(400) = 9.8 %
    assert lo == pytest.approx(0.902e9) and hi == pytest.approx(1.098e9)
