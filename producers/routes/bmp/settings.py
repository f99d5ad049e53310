"""Settings of ``netpilot routes bmp run`` (YAML section ``bmp:``, env NETPILOT_BMP__*).

Example::

    bmp:
      listen: 198.51.100.5:11019      # where the routers' `bmp connect` points
      inventory: inventory.yaml       # peer address -> link, through the links' next_hops
      policy: pre                     # which Adj-RIB-In the routes come from: pre or post
      routers: {198.51.100.1: fra1-edge1}   # only when sysName / exporter do not say
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from netpilot.settings import ComponentSettings


class BmpSettings(ComponentSettings):
    COMPONENT: ClassVar[str] = "bmp"

    listen: str = Field("127.0.0.1:11019", description="host:port of the BMP listener (port 0 = any free)")
    inventory: Path = Field(Path("inventory.yaml"), description="the inventory YAML (links' next_hops)")
    inventory_check_s: float = Field(10.0, gt=0, description="how often the inventory file is checked for changes")
    policy: Literal["pre", "post"] = Field(
        "pre", description="Adj-RIB-In pre-policy (what peers announce) or post-policy (what the router kept)"
    )
    routers: dict[str, str] = Field(
        default_factory=dict,
        description="BMP source address -> inventory router, when neither sysName nor the exporter address match",
    )
    settle_s: float = Field(
        10.0, gt=0, description="a syncing session without route messages this long is complete (no End-of-RIB)"
    )
    sync_max_s: float = Field(600.0, gt=0, description="a session's initial sync ends after this long at most")
    hold_s: float = Field(
        900.0, ge=0, description="a router's routes outlive its lost BMP session this long (0 = forever)"
    )
    strip_local_as: bool = Field(
        True, description="drop the router's own AS at the head of eBGP paths (FRR before 10.x prepends it)"
    )
    max_message_bytes: int = Field(1 << 20, ge=4096, le=1 << 24, description="longer BMP messages reset the session")
    max_sessions: int = Field(256, ge=1, description="BMP connections at once; more are refused and counted")
    startup_timeout_s: float = Field(60.0, gt=0, description="reading the routes topic at start, at most")

    @field_validator("routers")
    @classmethod
    def _addresses(cls, v: dict[str, str]) -> dict[str, str]:
        return {str(ipaddress.ip_address(a)): r for a, r in v.items()}

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError(f"listen {v!r}: expected host:port")
        return v
