"""The autopilot's knobs and their defaults (see docs/autopilot-design.md §5.5, which also
notes where they depart from the original design).

Thresholds are fractions of usable capacity, resolved per link in this order: the link's own
inventory thresholds, then ``thresholds[peer_type]`` (``default_hi`` for a peer type not
listed); what is still missing is derived from ``hi``: target = hi - target_gap,
alt_max = target, release = hi - release_gap.

Example::

    Policy()                                   # observe mode, the defaults (§5.5)
    Policy(mode="suggest", hold_s=600)         # longer hold
    Policy(thresholds={"ix": {"hi": 0.8}})     # IX links trigger at 80 %
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from streams.autopilot.errors import ScenarioError
from streams.autopilot.model import LinkState


class PeerThresholds(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    hi: float = Field(gt=0, le=1.5, description="trigger: U0 above this is an overload")
    target: float | None = Field(None, gt=0, le=1.5, description="fill-to after moves; default hi - target_gap")
    alt_max: float | None = Field(None, gt=0, le=1.5, description="max on an alternate after a move; default target")
    release: float | None = Field(
        None, gt=0, le=1.5, description="bring traffic back below this; default hi - release_gap"
    )


_PEER_DEFAULTS = {
    "transit": PeerThresholds(hi=0.90),
    "pni": PeerThresholds(hi=0.90),
    "ix": PeerThresholds(hi=0.85),
    "route-server": PeerThresholds(hi=0.85),
    "internal": PeerThresholds(hi=0.90),
}


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["observe", "suggest"] = Field(
        "observe", description="label on every recommendation; actuators act on 'suggest' only"
    )
    kill_switch: bool = Field(False, description="withdraw every override (K per cycle), add none")
    cycle_s: float = Field(30.0, gt=0, description="cycle period P")
    default_hi: float = Field(0.90, gt=0, le=1.5, description="trigger for peer types not listed")
    thresholds: dict[str, PeerThresholds] = Field(
        default_factory=lambda: dict(_PEER_DEFAULTS), description="per peer type"
    )
    target_gap: float = Field(0.05, ge=0, lt=1, description="target = hi - target_gap")
    release_gap: float = Field(0.15, ge=0, lt=1, description="release = hi - release_gap")
    hold_s: float = Field(300.0, ge=0, description="minimum life of an override after ADD")
    cooldown_s: float = Field(600.0, ge=0, description="no re-detour of a prefix after a release")
    ttl_s: float | None = Field(
        None, gt=0, description="valid_until = now + ttl_s; default 3 * cycle_s, at least min_ttl_s"
    )
    min_ttl_s: float = Field(
        60.0,
        ge=0,
        description="the default TTL is never shorter: an override must "
        "outlast a worker restart (a group session timeout and "
        "a cycle), or a restart is a WITHDRAW then an ADD, a "
        "route flap on the routers",
    )
    release_cycles: int = Field(
        4,
        ge=1,
        description="release hysteresis: a release is judged against the peak U0 of the native links over "
        "this many cycles (this one included), and only once that window is full; 1 = this cycle alone",
    )
    max_adds_per_cycle: int | None = Field(
        None,
        ge=0,
        description="new ADDs per cycle per PoP; None = sized to the need (the sum of the overloaded links' "
        "budgets, under max_changes_per_cycle); a number = a fixed cap (the design's 20)",
    )
    max_adds_per_link: int = Field(32, ge=1, description="new ADDs per cycle off one overloaded link (risk bound)")
    add_budget_slack: float = Field(
        1.5,
        ge=1,
        description="a link's ADD budget is ceil(slack x the fewest moves that relieve it) + 2, "
        "at most max_adds_per_link (when max_adds_per_cycle is None)",
    )
    max_withdraws_per_cycle: int = Field(10, ge=1, description="graceful/kill-switch withdraws per cycle (unwind rate)")
    max_moved_fraction_per_link: float = Field(
        0.25, gt=0, description="new moves per cycle, in or out of a link, x capacity"
    )
    max_active_overrides: int = Field(500, ge=0, description="overrides in place per PoP")
    split_enabled: bool = Field(True, description="emit more-specifics (only if the actuator tags them no-export)")
    split_threshold_bps: float = Field(250e6, gt=0, description="split prefixes above this (EF: 250 Mbps)")
    split_fraction_of_smallest_overloaded: float = Field(
        0.02, gt=0, description="... or above this fraction of the smallest overloaded link's capacity"
    )
    min_split_len_v4: int = Field(
        24, ge=1, le=32, description="longest IPv4 more-specific emitted (routers and peers filter longer)"
    )
    min_split_len_v6: int = Field(48, ge=1, le=128, description="longest IPv6 more-specific emitted")
    max_split_adds_per_cycle: int = Field(
        20, ge=0, description="ADDs of more-specifics (split pieces) per cycle per PoP; 0 = none new"
    )
    fit_epsilon: float = Field(0.1, ge=0, description="a prefix 'fits' if rate <= remaining excess x (1 + eps)")
    stale_after_cycles: float = Field(3.0, gt=0, description="inputs older than this many cycles are stale")
    max_total_rate_change: float = Field(0.5, gt=0, description="implausible if the PoP total moves more in a cycle")
    max_rate_over_capacity: float = Field(1.1, gt=1, description="implausible if a link's rate exceeds capacity x this")
    # Flows are mostly sampled where traffic enters the router, before the egress queue
    # drops what does not fit: the demand for an overloaded link is legitimately above its
    # capacity (that is when moving traffic matters most), so this bound only catches data
    # no surge explains (garbage, sums saturated at 2^64 upstream).
    max_demand_over_capacity: float = Field(
        4.0, gt=1, description="implausible if the flow demand seen on a link exceeds capacity x this"
    )
    misprojection_threshold: float = Field(
        0.05, gt=0, description="alarm when |actual - projected| utilisation stays above this (EF: 5 %)"
    )
    misprojection_after_s: float = Field(300.0, ge=0, description="... for this long (EF: 5 min)")
    max_changes_per_cycle: int = Field(100, ge=1, description="validation: more ADD+WITHDRAW -> keep last valid set")
    max_moved_fraction_of_pop: float = Field(0.5, gt=0, description="validation: new-move bps / PoP traffic")
    deny_prefixes: tuple[str, ...] = Field((), description="never detour prefixes inside these")
    bgp_local_pref: int = Field(500, ge=0, description="hint for the injected route")
    bgp_communities: tuple[str, ...] = Field(("64496:666",), description="hint: controller community")
    bgp_no_export: bool = True

    @field_validator("thresholds", mode="before")
    @classmethod
    def _over_defaults(cls, value: object) -> object:
        # Setting the IX trigger must not drop the other peer types back to default_hi.
        return {**_PEER_DEFAULTS, **value} if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _check(self) -> Policy:
        for peer_type, t in self.thresholds.items():
            self._resolved(t, f"thresholds.{peer_type}")
        return self

    @property
    def ttl(self) -> float:
        return self.ttl_s if self.ttl_s is not None else max(3 * self.cycle_s, self.min_ttl_s)

    @property
    def stale_after_s(self) -> float:
        return self.stale_after_cycles * self.cycle_s

    def for_link(self, link: LinkState) -> tuple[float, float, float, float]:
        """(hi, target, alt_max, release) for a link; raises if they contradict each other."""
        base = self.thresholds.get(link.peer_type) or PeerThresholds(hi=self.default_hi)
        own = link.thresholds
        hi = own.hi if own.hi is not None else base.hi
        merged = PeerThresholds.model_construct(
            hi=hi,
            target=own.target if own.target is not None else (base.target if own.hi is None else None),
            alt_max=own.alt_max if own.alt_max is not None else (base.alt_max if own.hi is None else None),
            release=own.release if own.release is not None else (base.release if own.hi is None else None),
        )
        return self._resolved(merged, f"link {link.link_id}")

    def _resolved(self, t: PeerThresholds, where: str) -> tuple[float, float, float, float]:
        target = t.target if t.target is not None else t.hi - self.target_gap
        alt_max = t.alt_max if t.alt_max is not None else target
        release = t.release if t.release is not None else t.hi - self.release_gap
        # release < target <= hi and alt_max <= hi, or the planner would flap: a link filled to
        # alt_max must not count as overloaded, and one released must not re-trigger at once.
        if not (0 < release < target <= t.hi and alt_max <= t.hi):
            raise ScenarioError(
                f"{where}: thresholds must satisfy 0 < release < target <= hi and alt_max <= hi; "
                f"got hi={t.hi}, target={target:.3f}, alt_max={alt_max:.3f}, release={release:.3f}"
            )
        return t.hi, target, alt_max, release
