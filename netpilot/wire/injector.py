"""applied-override/1 (key ``pop|prefix``) and injector-control/1 (key ``approval|pop|prefix``
or ``drain|pop``): what the BGP injector confirmed on the routers, and what people told it.

An applied override is written from the router's own RIB (``birdc``/``vtysh``), never from
what the injector believes it announced: it is the loop's confirmation.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from netpilot.wire.json import WireMessage

ALL_POPS = "*"
"""``pop`` of a drain/resume that applies to every PoP."""


class AppliedOverride(WireMessage):
    SCHEMA_NAME = "applied-override"
    TIME_FIELDS = ("since", "confirmed_at")
    pop: str
    prefix: str
    link_id: str | None = None
    """The link whose peer address is the installed next-hop (None: not in the inventory)."""
    next_hop: str
    routers: tuple[str, ...]
    """The PoP's routers whose RIB holds the route as best, with netpilot's community."""
    local_pref: int | None = Field(default=None, ge=0)
    communities: tuple[str, ...] = ()
    recommendation_id: str | None = None
    since: float
    """When a router was first seen holding it (unix seconds)."""
    confirmed_at: float
    """The latest read-back that found it."""

    def key(self) -> str:
        return f"{self.pop}|{self.prefix}"


class InjectorControl(WireMessage):
    SCHEMA_NAME = "injector-control"
    # No TIME_FIELDS: a drain typed on a laptop whose clock is off must still stop the
    # injector, and no consumer orders or expires anything by ``at``.
    kind: Literal["approve", "reject", "drain", "resume"]
    pop: str
    """A PoP, or ``*`` for every PoP (drain/resume only)."""
    prefix: str | None = None
    created_at: float | None = None
    """approve/reject: the override instance (its recommendation's ``created_at``) the
    decision is about; a later, new override of the same prefix needs a new decision."""
    to_link: str | None = None
    by: str = ""
    at: float
    reason: str = ""

    def key(self) -> str:
        if self.kind in ("drain", "resume"):
            return f"drain|{self.pop}"
        return f"approval|{self.pop}|{self.prefix}"
