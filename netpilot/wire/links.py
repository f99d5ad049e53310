"""Link wire messages: inventory (compacted), stats (counters) and utilisation."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from netpilot.wire.json import WireMessage

PeerType = Literal["transit", "pni", "ix", "route-server", "internal"]


class LinkThresholds(WireMessage):
    """Autopilot thresholds (fractions of capacity); None means the PoP/peer-type default."""

    SCHEMA_NAME = "link-thresholds"
    hi: float | None = Field(default=None, gt=0, le=1.5)
    target: float | None = Field(default=None, gt=0, le=1.5)
    alt_max: float | None = Field(default=None, gt=0, le=1.5)
    release: float | None = Field(default=None, gt=0, le=1.5)


class LinkInventory(WireMessage):
    """link-inventory/1, key ``pop|link_id``; a tombstone (null value) deletes the link."""

    SCHEMA_NAME = "link-inventory"
    pop: str
    link_id: str
    router: str
    exporter: str | None = None
    """Address the router exports flows from (text form)."""
    if_name: str | None = None
    if_index: int | None = Field(default=None, ge=0)
    capacity_bps: float = Field(gt=0)
    peer_asn: int | None = Field(default=None, ge=0, le=4294967295)
    peer_type: PeerType = "transit"
    next_hops: tuple[str, ...] = ()
    thresholds: LinkThresholds = LinkThresholds()
    drained: bool = False
    description: str = ""


class LinkStats(WireMessage):
    """link-stats/1, key ``pop``: one interface's counters and derived rates at one poll."""

    SCHEMA_NAME = "link-stats"
    TIME_FIELDS = ("ts",)
    pop: str
    router: str
    link_id: str | None = None
    if_index: int = Field(ge=0)
    if_name: str | None = None
    source: Literal["snmp", "sflow", "simulator"] = "snmp"
    ts: float
    """Unix seconds when the counters were read."""
    interval_s: float | None = Field(default=None, ge=0)
    """Seconds since the previous reading used for the rates (None on the first poll)."""
    out_octets: int | None = Field(default=None, ge=0)
    in_octets: int | None = Field(default=None, ge=0)
    out_bps: float | None = Field(default=None, ge=0)
    in_bps: float | None = Field(default=None, ge=0)
    speed_bps: float | None = Field(default=None, ge=0)
    oper_up: bool = True
    out_discards: int | None = Field(default=None, ge=0)
    out_errors: int | None = Field(default=None, ge=0)
    counter_reset: bool = False
    """The counters went backwards or the agent restarted: no rate for this interval."""
    # -- added for the SNMP poller (optional, so older readers and producers are unaffected)
    if_alias: str | None = None
    in_discards: int | None = Field(default=None, ge=0)
    in_errors: int | None = Field(default=None, ge=0)
    out_octets_delta: int | None = Field(default=None, ge=0)
    """Octets sent during ``interval_s`` (wrap unrolled); None on a first poll or a reset.
    ``out_octets``/``in_octets`` above are the raw counter values."""
    in_octets_delta: int | None = Field(default=None, ge=0)
    counter_wrap: bool = False
    """A 64-bit counter wrapped during the interval and was unrolled (the rate is valid)."""


class LinkUtilisation(WireMessage):
    """link-utilisation/1, key ``pop``: per link and window, the rate against capacity."""

    SCHEMA_NAME = "link-utilisation"
    TIME_FIELDS = ("window_start",)
    pop: str
    link_id: str
    window_start: float
    window_s: float = Field(gt=0)
    capacity_bps: float = Field(gt=0)
    counter_bps: float | None = Field(default=None, ge=0)
    """Authoritative rate from interface counters."""
    flow_bps: float = Field(default=0.0, ge=0)
    """Sampling-corrected rate explained by flows."""
    utilisation: float | None = Field(default=None, ge=0)
    coverage: float | None = Field(default=None, ge=0)
    """flow_bps / counter_bps: how much of the traffic flows explain."""
