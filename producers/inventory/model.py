"""The inventory file's schema: PoPs -> routers -> links.

Example (see examples/inventory.yaml)::

    pops:
      fra1:
        routers:
          fra1-edge1:
            exporters: [192.0.2.10]
            snmp: {target: "192.0.2.10:161", version: "2c", credentials: lab-ro}
            links:
              transit-a: {if_name: et-0/0/1, capacity: 100G, peer_asn: 64500, peer_type: transit}

SNMP secrets are *not* in this file (it is published to Kafka): ``credentials`` names an
entry of the SNMP poller's settings.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from netpilot.wire.links import PeerType

_UNITS = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
_CAPACITY = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmMgGtT]?)(?:bps|bit/s|b)?\s*$")


def parse_capacity(value: object) -> float:
    """``100G``, ``10Gbps``, ``400M``, ``2.5g`` or a number of bits per second."""
    if isinstance(value, bool):
        raise ValueError("capacity must be a number of bit/s or a string like '100G'")
    if isinstance(value, (int, float)):
        bps = float(value)
    elif isinstance(value, str) and (m := _CAPACITY.match(value)):
        bps = float(m.group(1)) * _UNITS[m.group(2).lower()]
    else:
        raise ValueError(
            f"capacity {value!r} is not understood; write bit/s as a number or with a unit: 400M, 10G, 100Gbps, 1.6T"
        )
    if bps <= 0:
        raise ValueError("capacity must be > 0")
    return bps


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ThresholdsSpec(_Strict):
    """Fractions of capacity; unset means the PoP default, then the autopilot's."""

    hi: float | None = Field(None, gt=0, le=1.5)
    target: float | None = Field(None, gt=0, le=1.5)
    alt_max: float | None = Field(None, gt=0, le=1.5)
    release: float | None = Field(None, gt=0, le=1.5)


def check_threshold_order(t: ThresholdsSpec) -> str | None:
    """release < target < hi must hold between the values that are set."""
    order = [("release", t.release), ("target", t.target), ("hi", t.hi)]
    known = [(n, v) for n, v in order if v is not None]
    for (n1, v1), (n2, v2) in zip(known, known[1:]):
        if v1 >= v2:
            return f"thresholds must satisfy release < target < hi, but {n1}={v1} >= {n2}={v2}"
    return None


class SnmpSpec(_Strict):
    target: str = Field(description="host[:port] of the agent; port 161 by default")
    version: Literal["2c", "3"] = "2c"
    credentials: str = Field(min_length=1, description="name of an entry in the poller's snmp.credentials settings")

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, v: object) -> object:
        return str(v) if isinstance(v, int) else v

    @field_validator("target")
    @classmethod
    def _target(cls, v: str) -> str:
        host, port = split_host_port(v, 161)
        if not host:
            raise ValueError(f"snmp target {v!r} has no host")
        if not 0 < port < 65536:
            raise ValueError(f"snmp target port {port} is out of range 1..65535")
        return v


def split_host_port(text: str, default_port: int) -> tuple[str, int]:
    """``192.0.2.1:161``, ``[2001:db8::1]:161``, ``2001:db8::1`` or a host name."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    try:
        return host, int(port) if port else default_port
    except ValueError:
        raise ValueError(f"port {port!r} in {text!r} is not a number") from None


class LinkSpec(_Strict):
    if_name: str | None = Field(None, min_length=1)
    if_index: int | None = Field(None, ge=1)
    capacity: float = Field(description="bit/s; '100G' etc. accepted")
    peer_asn: int | None = Field(None, ge=1, le=4294967295)
    peer_type: PeerType = "transit"
    next_hops: tuple[str, ...] = ()
    thresholds: ThresholdsSpec = ThresholdsSpec()
    drained: bool = False
    description: str = ""

    @field_validator("capacity", mode="before")
    @classmethod
    def _capacity(cls, v: object) -> float:
        return parse_capacity(v)

    @field_validator("next_hops")
    @classmethod
    def _next_hops(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_address(nh, "next hop") for nh in v)

    @model_validator(mode="after")
    def _interface_named(self) -> LinkSpec:
        if self.if_name is None and self.if_index is None:
            raise ValueError("a link needs if_name (preferred: survives reboots) or if_index")
        return self


class RouterSpec(_Strict):
    exporters: tuple[str, ...] = ()
    """Source addresses of the router's flow exports."""
    snmp: SnmpSpec | None = None
    counters: Literal["snmp", "external"] = "snmp"
    """Where the links' interface counters come from: ``snmp`` (the poller, through
    ``snmp:``) or ``external`` (published to link-stats by something else: sFlow counter
    samples, the simulator, another poller), which needs no ``snmp:`` target."""
    links: dict[str, LinkSpec] = Field(default_factory=dict)

    @field_validator("exporters")
    @classmethod
    def _exporters(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_address(a, "exporter") for a in v)


def _address(text: str, what: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError(f"{what} {text!r} is not an IPv4 or IPv6 address") from None


class PopSpec(_Strict):
    description: str = ""
    thresholds: ThresholdsSpec = ThresholdsSpec()
    """Defaults for the PoP's links (a link's own values win)."""
    routers: dict[str, RouterSpec] = Field(default_factory=dict)


class InventorySpec(_Strict):
    pops: dict[str, PopSpec]
