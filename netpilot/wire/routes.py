"""route/1, key ``pop|link_id|prefix``: a prefix a link can reach; tombstone = withdrawal."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from netpilot.wire.json import WireMessage


class Route(WireMessage):
    SCHEMA_NAME = "route"
    pop: str
    link_id: str
    prefix: str
    """CIDR text, IPv4 or IPv6."""
    next_hop: str | None = None
    as_path: tuple[int, ...] = ()
    origin: Literal["igp", "egp", "incomplete"] = "igp"
    local_pref: int = Field(default=100, ge=0)
    med: int = Field(default=0, ge=0)
    communities: tuple[str, ...] = ()

    @property
    def origin_as(self) -> int:
        return self.as_path[-1] if self.as_path else 0

    def key(self) -> str:
        return f"{self.pop}|{self.link_id}|{self.prefix}"
