"""Which router a BMP session is, and which link each of its BGP peers is.

A link's ``next_hops`` in the inventory are its BGP neighbours' addresses, so a monitored
peer maps to the link whose next_hops hold the peer's address. The router of a session
(its sysName, its source address, or an explicit setting) narrows that to the router's own
links; without it the address must be unique in the whole inventory. Peers that map to no
link (iBGP, route reflectors, unknown neighbours) are counted and skipped, never guessed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from netpilot.wire.links import LinkInventory
from producers.routes.mrt import LinkRef

_AMBIGUOUS = LinkRef("", "")


@dataclass(frozen=True)
class LinkMap:
    by_router: dict[str, dict[str, LinkRef]] = field(default_factory=dict)
    """router -> peer address -> link"""
    anywhere: dict[str, LinkRef] = field(default_factory=dict)
    """peer address -> link, for sessions whose router is unknown (ambiguous ones excluded)"""
    router_links: dict[str, frozenset[LinkRef]] = field(default_factory=dict)
    explicit: dict[str, str] = field(default_factory=dict)
    """BMP source address -> router, from the settings (``bmp.routers``)"""
    exporters: dict[str, str] = field(default_factory=dict)
    """flow-export address (the inventory router's first ``exporters``) -> router"""
    routers: frozenset[str] = frozenset()

    @classmethod
    def build(cls, links: Iterable[LinkInventory], explicit: Mapping[str, str] | None = None) -> LinkMap:
        by_router: dict[str, dict[str, LinkRef]] = {}
        anywhere: dict[str, LinkRef] = {}
        router_links: dict[str, set[LinkRef]] = {}
        of_address: dict[str, str] = {}
        for link in links:
            ref = LinkRef(link.pop, link.link_id)
            router_links.setdefault(link.router, set()).add(ref)
            if link.exporter:
                of_address[link.exporter] = link.router
            for nh in link.next_hops:
                by_router.setdefault(link.router, {})[nh] = ref
                anywhere[nh] = _AMBIGUOUS if nh in anywhere and anywhere[nh] != ref else ref
        return cls(
            by_router=by_router,
            anywhere={a: r for a, r in anywhere.items() if r is not _AMBIGUOUS},
            router_links={r: frozenset(v) for r, v in router_links.items()},
            explicit=dict(explicit or {}),
            exporters=of_address,
            routers=frozenset(router_links),
        )

    def identify(self, source: str, sys_name: str | None) -> str | None:
        """The inventory router of a BMP session: the setting for its source address, else its
        sysName (Initiation TLV) when that is an inventory router, else the router whose flow
        exports come from the same address."""
        if source in self.explicit:
            return self.explicit[source]
        if sys_name and sys_name in self.routers:
            return sys_name
        return self.exporters.get(source)

    def link(self, router: str | None, peer: str) -> LinkRef | None:
        if router is not None:
            return self.by_router.get(router, {}).get(peer)
        return self.anywhere.get(peer)

    def links_of(self, router: str | None) -> frozenset[LinkRef]:
        return self.router_links.get(router, frozenset()) if router is not None else frozenset()
