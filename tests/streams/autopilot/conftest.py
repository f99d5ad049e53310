"""Fixtures of the autopilot tests: the pure planner needs no broker."""

from __future__ import annotations

import pytest

from streams.autopilot.policy import Policy


@pytest.fixture
def policy() -> Policy:
    """Policy defaults (docs/autopilot-design.md §5.5), no splitting (most tests use /24s and
    want them whole)."""
    return Policy(mode="suggest", split_enabled=False)
