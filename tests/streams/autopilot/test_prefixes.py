from __future__ import annotations

import pytest

from streams.autopilot import prefixes as px
from streams.autopilot.errors import ScenarioError


@pytest.mark.parametrize(
    "text",
    ["198.51.100.0/24", "0.0.0.0/0", "203.0.113.128/25", "2001:db8::/32", "2001:db8:1:2::/64", "::/0", "192.0.2.7/32"],
)
def test_round_trip(text: str) -> None:
    assert px.to_text(px.parse(text)) == text


def test_families_and_halves() -> None:
    v4 = px.parse("198.51.100.0/24")
    assert px.is_v4(v4) and px.afi(v4) == 4 and px.family_len(v4) == 24
    lo, hi = px.halves(v4)
    assert (px.to_text(lo), px.to_text(hi)) == ("198.51.100.0/25", "198.51.100.128/25")
    assert px.contains(v4, hi) and not px.contains(hi, v4) and px.in_upper_half(v4, hi)
    assert px.to_text(px.supernet(v4, px.V4_OFFSET + 22)) == "198.51.100.0/22"
    v6 = px.parse("2001:db8::/32")
    assert not px.is_v4(v6) and px.afi(v6) == 6 and not px.contains(v6, v4)


@pytest.mark.parametrize(
    "bad", ["198.51.100.1/24", "198.51.100.0/33", "300.1.1.0/24", "2001:db8::1/32", "nonsense", "010.0.0.0/8"]
)
def test_bad_prefix_names_the_fix(bad: str) -> None:
    with pytest.raises(ScenarioError, match="network/length"):
        px.parse(bad)
