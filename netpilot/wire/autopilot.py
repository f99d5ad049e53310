"""recommendation/1 (key ``pop|prefix``) and cycle-summary/1 (key ``pop``).

Field meanings: see docs/autopilot-design.md §5.7.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from netpilot.wire.json import WireMessage

Action = Literal["ADD", "REFRESH", "WITHDRAW"]
Mode = Literal["observe", "suggest", "inject"]
Reason = Literal[
    "OVERLOAD", "ROUTE_WITHDRAWN", "ALT_OVERLOAD", "LINK_DOWN", "RELEASE", "TTL", "KILL_SWITCH", "STICKY", "DRAINED"
]


class LinkSide(WireMessage):
    SCHEMA_NAME = "link-side"
    link_id: str
    router: str | None = None
    peer_asn: int | None = None
    peer_type: str | None = None
    next_hop: str | None = None
    route_prefix: str | None = None
    as_path: tuple[int, ...] = ()
    util_projected_before: float | None = None
    util_projected_after: float | None = None
    ecmp_links: tuple[str, ...] = ()
    """All native links when the prefix is spread over several (multipath); added in 1.1."""


class Recommendation(WireMessage):
    SCHEMA_NAME = "recommendation"
    TIME_FIELDS = ("generated_at", "created_at")
    DEADLINE_FIELDS = ("valid_until", "hold_until")
    id: str
    cycle_id: str
    generated_at: float
    valid_until: float
    hold_until: float | None = None
    pop: str
    action: Action
    mode: Mode
    prefix: str
    afi: Literal[4, 6]
    split_from: str | None = None
    rate_bps: float = Field(ge=0)
    samples: int | None = None
    from_: LinkSide = Field(alias="from")
    to: LinkSide
    thresholds: dict[str, float] = {}
    reason: Reason
    rank: int = 0
    bgp_hint: dict[str, object] = {}
    # Added in 1.1 (optional, so 1.0 readers and writers still work):
    rate_ci95_bps: tuple[float, float] | None = None
    """95 % confidence interval of rate_bps from the sample count (sflow.org sampling basics)."""
    created_at: float | None = None
    """When the override was first recommended (its age = generated_at - created_at)."""
    controller: dict[str, object] = {}
    """Planner version and input watermarks, to audit or replay the decision."""

    def key(self) -> str:
        return f"{self.pop}|{self.prefix}"


class CycleSummary(WireMessage):
    SCHEMA_NAME = "cycle-summary"
    TIME_FIELDS = ("generated_at",)
    cycle_id: str
    pop: str
    generated_at: float
    mode: Mode
    overloaded_links: tuple[str, ...] = ()
    unresolved_bps: dict[str, float] = {}
    adds: int = 0
    refreshes: int = 0
    withdraws: int = 0
    active_overrides: int = 0
    detoured_bps: float = 0.0
    stale_inputs: tuple[str, ...] = ()
    fail_static: bool = False
    kill_switch: bool = False
    # Added in 1.1:
    implausible_inputs: tuple[str, ...] = ()
    diff_rejected: bool = False
    """The plan changed more than the validation limits allow; the last set was kept."""
    util_no_override: dict[str, float] = {}
    """Per link, projected utilisation as if no override were in place (U0)."""
    util_projected: dict[str, float] = {}
    """Per link, projected utilisation with this cycle's overrides."""
    util_actual: dict[str, float] = {}
    """Per link, counter rate / capacity: against util_projected, the projection error."""
    # Added in 1.2:
    projection_error: dict[str, float] = {}
    """Per link with counters: actual utilisation minus what the previous cycle expected
    (its projection with overrides in suggest mode, without them in observe mode)."""
    misprojected_links: tuple[str, ...] = ()
    """Links whose |projection_error| exceeded the policy threshold (5 %) for 5 minutes."""
    util_trigger: dict[str, float] = {}
    """Per link, the trigger utilisation (T_hi) the policy gave it: what dashboards and the
    demo draw as each link's threshold."""
    # Added in 1.3:
    moves_lower_bound: int = Field(0, ge=0)
    """The fewest moves (ADDs) that could relieve this cycle's overloads, summed over the
    overloaded links (docs/autopilot-design.md §5.3 step 7); 0 when nothing needed moving."""
    moves_ratio: float | None = Field(None, ge=0)
    """adds / moves_lower_bound: how far from that bound the cycle was (None when it is 0)."""
