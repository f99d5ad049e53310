"""recommendation/1 (key ``pop|prefix``) and cycle-summary/1 (key ``pop``).

Field meanings follow the autopilot design reference (shared/design/autopilot.md §5.7).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from netpilot.wire.json import WireMessage

Action = Literal["ADD", "REFRESH", "WITHDRAW"]
Mode = Literal["observe", "suggest", "inject"]
Reason = Literal["OVERLOAD", "ROUTE_WITHDRAWN", "ALT_OVERLOAD", "LINK_DOWN", "RELEASE", "TTL",
                 "KILL_SWITCH", "STICKY"]


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


class Recommendation(WireMessage):
    SCHEMA_NAME = "recommendation"
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


    def key(self) -> str:
        return f"{self.pop}|{self.prefix}"


class CycleSummary(WireMessage):
    SCHEMA_NAME = "cycle-summary"
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
