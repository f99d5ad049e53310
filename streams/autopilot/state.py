"""State the planner carries from one cycle to the next, per PoP.

The allocation itself is recomputed from scratch every cycle (Edge Fabric); this state only
drives hysteresis, hold, TTL, cooldown and fail-static. It is small (the active overrides,
a few hundred at most, plus cooldowns) and round-trips through plain JSON-able dicts, so
the faust wiring keeps it in one Table keyed by PoP::

    state = PlannerState.from_dict(table.get(pop))       # None -> empty state
    plan = planner.plan(snapshot, state, policy, now)
    table[pop] = plan.state.to_dict()                     # changelog-backed

A restarted worker reads the same dict back from the changelog and continues the same
overrides (same hold and TTL) instead of starting over.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from streams.autopilot.errors import ScenarioError

STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class Override:
    """An override recommended in an earlier cycle and not withdrawn since."""

    prefix: str
    to_link: str
    from_links: tuple[str, ...]
    created_at: float
    hold_until: float
    valid_until: float
    rate_bps: float = 0.0
    reason: str = "OVERLOAD"
    split_from: str | None = None
    last_refreshed: float | None = None


@dataclass(frozen=True, slots=True)
class InputTotals:
    """Totals of the previous cycle's inputs, for the plausibility gate.

    Compared with the previous cycle, not the last *valid* one: a real, lasting change (a
    capacity upgrade) then costs one fail-static cycle instead of blocking the PoP forever.
    """

    at: float
    total_rate_bps: float
    usable_bps: Mapping[str, float]
    up: Mapping[str, bool]


@dataclass(frozen=True, slots=True)
class PlannerState:
    overrides: Mapping[str, Override] = field(default_factory=dict)
    """prefix text -> override."""
    cooldowns: Mapping[str, float] = field(default_factory=dict)
    """prefix text -> earliest time it may be detoured again."""
    previous_inputs: InputTotals | None = None
    cycle: int = 0
    expected_util: Mapping[str, float] = field(default_factory=dict)
    """link -> the utilisation the last cycle expected the counters to show next (its
    projection with overrides in suggest mode, without them in observe mode)."""
    misprojected_since: Mapping[str, float] = field(default_factory=dict)
    """link -> since when actual and expected differ by more than the threshold."""
    u0_history: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    """link -> U0 (utilisation without overrides) of the last ``release_cycles - 1`` planning
    cycles, oldest first: the window the release hysteresis judges (trend.py)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "cycle": self.cycle,
            "overrides": [_override_dict(o) for _, o in sorted(self.overrides.items())],
            "cooldowns": dict(sorted(self.cooldowns.items())),
            "previous_inputs": None
            if self.previous_inputs is None
            else {
                "at": self.previous_inputs.at,
                "total_rate_bps": self.previous_inputs.total_rate_bps,
                "usable_bps": dict(sorted(self.previous_inputs.usable_bps.items())),
                "up": dict(sorted(self.previous_inputs.up.items())),
            },
            "expected_util": dict(sorted(self.expected_util.items())),
            "misprojected_since": dict(sorted(self.misprojected_since.items())),
            "u0_history": {k: list(v) for k, v in sorted(self.u0_history.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> PlannerState:
        if not data:
            return cls()
        if data.get("version") != STATE_VERSION:
            raise ScenarioError(
                f"planner state version {data.get('version')!r} is not "
                f"{STATE_VERSION}; it was written by another netpilot"
            )
        try:
            overrides = {}
            for raw in data.get("overrides", ()):
                o = Override(**{**raw, "from_links": tuple(raw.get("from_links", ()))})
                overrides[o.prefix] = o
            lv = data.get("previous_inputs")
            previous = (
                None
                if lv is None
                else InputTotals(
                    at=float(lv["at"]),
                    total_rate_bps=float(lv["total_rate_bps"]),
                    usable_bps={k: float(v) for k, v in lv["usable_bps"].items()},
                    up={k: bool(v) for k, v in lv["up"].items()},
                )
            )
            return cls(
                overrides=overrides,
                cooldowns={k: float(v) for k, v in data.get("cooldowns", {}).items()},
                previous_inputs=previous,
                cycle=int(data.get("cycle", 0)),
                # optional: state written before the projection check had neither
                expected_util={k: float(v) for k, v in data.get("expected_util", {}).items()},
                misprojected_since={k: float(v) for k, v in data.get("misprojected_since", {}).items()},
                # optional too: state written before the release hysteresis had none (the
                # window then starts empty, so nothing is released until it has filled)
                u0_history={k: tuple(float(x) for x in v) for k, v in data.get("u0_history", {}).items()},
            )
        except (TypeError, KeyError, ValueError) as exc:
            raise ScenarioError(f"planner state is malformed: {exc!r}") from exc


def _override_dict(o: Override) -> dict[str, Any]:
    d = asdict(o)
    d["from_links"] = list(o.from_links)
    return d
