from __future__ import annotations

import pytest
from pydantic import ValidationError

from streams.autopilot.errors import ScenarioError
from streams.autopilot.policy import Policy
from tests.streams.autopilot.factory import link


def test_defaults_follow_the_design_reference() -> None:
    p = Policy()
    assert p.mode == "observe" and p.ttl == 90 and p.stale_after_s == 90
    assert p.for_link(link("x", peer_type="pni")) == pytest.approx((0.90, 0.85, 0.85, 0.75))
    assert p.for_link(link("x", peer_type="ix")) == pytest.approx((0.85, 0.80, 0.80, 0.70))
    assert p.for_link(link("x", peer_type="unknown-kind")) == pytest.approx((0.90, 0.85, 0.85, 0.75))


def test_per_link_thresholds_override_the_peer_type() -> None:
    p = Policy(thresholds={"transit": {"hi": 0.95, "target": 0.93}})
    assert p.for_link(link("x")) == pytest.approx((0.95, 0.93, 0.93, 0.80))
    assert p.for_link(link("x", peer_type="ix"))[0] == 0.85  # other peer types keep their defaults
    # A link's own hi re-derives the rest from it, rather than mixing with the peer type's.
    assert p.for_link(link("x", thresholds={"hi": 0.8})) == pytest.approx((0.8, 0.75, 0.75, 0.65))
    assert p.for_link(link("x", thresholds={"release": 0.5})) == pytest.approx((0.95, 0.93, 0.93, 0.5))


def test_contradicting_thresholds_are_refused_with_the_rule() -> None:
    with pytest.raises(ScenarioError, match="release < target <= hi"):
        Policy(thresholds={"pni": {"hi": 0.9, "release": 0.88, "target": 0.85}})
    with pytest.raises(ScenarioError, match="link x"):
        Policy().for_link(link("x", thresholds={"alt_max": 0.99}))
    with pytest.raises(ValidationError, match="extra"):
        Policy(hold=30)


def test_cycles_shorter_than_a_takeover_are_warned_about() -> None:
    """A dead worker's PoPs wait the session timeout plus a restore: with shorter cycles they
    lose more than one (the scale-out promise), which the worker says at start-up."""
    from streams.autopilot.settings import AutopilotSettings

    assert AutopilotSettings().takeover_warning() is None  # 30 s cycles, 10 s session
    assert AutopilotSettings(policy=Policy(cycle_s=15)).takeover_warning() is None  # the demo's
    warning = AutopilotSettings(policy=Policy(cycle_s=5)).takeover_warning()
    assert warning and "more than one cycle" in warning and "session_timeout_s 10s" in warning
    assert AutopilotSettings(policy=Policy(cycle_s=20), session_timeout_s=30).takeover_warning()
