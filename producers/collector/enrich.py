"""Enrichment of a decoded batch: exporter -> PoP/router, (exporter, out_if) -> link,
dst_addr -> dst prefix / dst AS by longest-prefix match. All vectorised per batch.

Unknown links and unrouted destinations are flagged (LINK_UNKNOWN, PREFIX_UNKNOWN), not
dropped: the flows are still real traffic. A route's dst AS replaces the exporter's
value; without a route the exporter's value is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from netpilot.lpm import PrefixTable
from netpilot.wire.flows import FlowFlags
from producers.collector.inventory import Inventory

_MAPPED = np.array([0] * 10 + [0xFF, 0xFF], dtype=np.uint8)
"""The first 12 bytes of an IPv4-mapped address (``::ffff:0:0/96``)."""


def _mask(mapped_len: int) -> np.ndarray:
    """The 16-byte network mask of a prefix length in the 128-bit (IPv4-mapped) space."""
    bits = ((1 << 128) - 1) ^ ((1 << (128 - mapped_len)) - 1)
    return np.frombuffer(bits.to_bytes(16, "big"), np.uint8)


@dataclass
class Enriched:
    columns: dict[str, object]
    pop_index: np.ndarray  # int32 per flow into Enricher.pops (-1 = unknown exporter)
    link_unknown: int
    prefix_unknown: int


class Enricher:
    def __init__(self, inventory: Inventory, finer_v4: int | None = None, finer_v6: int | None = None) -> None:
        """``finer_v4``/``finer_v6``: report a routed destination at least this specific (the
        /24 or /48 inside a shorter route) instead of the route, so demand is measured finely
        enough for the autopilot to split a heavy route (docs/autopilot-design.md §5.3)."""
        self._finer = [
            (v4, length, _mask((96 if v4 else 0) + length))
            for v4, length in ((True, finer_v4), (False, finer_v6))
            if length is not None
        ]
        self.pops = [p.name for p in inventory.pops]
        routers = inventory.routers()
        self.router_names = [r.name for _, r in routers]
        self._router_pop = np.array([self.pops.index(p.name) for p, _ in routers] or [0], np.int32)
        # exporter address -> router position, via sorted 16-byte keys
        keys = np.array([r.exporter_addr for _, r in routers], dtype="S16")
        order = np.argsort(keys)
        self._exp_keys, self._exp_router = keys[order], np.arange(len(routers), dtype=np.int32)[order]
        # (router, if_index) -> link position, keyed as router << 32 | if_index
        self.link_ids = [""]
        link_keys, link_pos = [], []
        for ri, (_, r) in enumerate(routers):
            for link in r.links:
                self.link_ids.append(link.link_id)
                link_keys.append((ri << 32) | link.if_index)
                link_pos.append(len(self.link_ids) - 1)
        lk = np.array(link_keys, np.int64)
        order = np.argsort(lk)
        self._link_keys, self._link_pos = lk[order], np.array(link_pos, np.int32)[order]
        self._routes = PrefixTable.build([r.prefix for r in inventory.routes])
        self._route_as = np.array([r.dst_as for r in inventory.routes] or [0], np.uint32)
        self.sampling_defaults = {r.exporter_addr: r.sampling_rate for _, r in routers if r.sampling_rate}

    def locate(self, exporter: bytes) -> tuple[str, str] | None:
        """(pop, router) of one exporter address, None when it is not in the inventory."""
        ri = int(self.routers_of(np.frombuffer(exporter, np.uint8).reshape(1, 16))[0])
        if ri < 0:
            return None
        return self.pops[int(self._router_pop[ri])], self.router_names[ri]

    def routers_of(self, exporters: np.ndarray) -> np.ndarray:
        """(n, 16) exporter addresses -> router position (-1 = not in the inventory)."""
        n = len(exporters)
        if not n or not len(self._exp_keys):
            return np.full(n, -1, np.int32)
        k = np.ascontiguousarray(exporters).view("S16").ravel()
        pos = np.minimum(np.searchsorted(self._exp_keys, k), len(self._exp_keys) - 1)
        return np.where(self._exp_keys[pos] == k, self._exp_router[pos], -1).astype(np.int32)

    def enrich(self, cols: dict[str, np.ndarray]) -> Enriched:
        n = len(cols["bytes"])
        router = self.routers_of(cols["exporter"])
        known = router >= 0
        pop = np.where(known, self._router_pop[np.maximum(router, 0)], -1).astype(np.int32)
        link = np.zeros(n, np.int32)
        if len(self._link_keys):
            key = (np.maximum(router, 0).astype(np.int64) << 32) | cols["out_if"].astype(np.int64)
            pos = np.minimum(np.searchsorted(self._link_keys, key), len(self._link_keys) - 1)
            hit = known & (self._link_keys[pos] == key)
            link = np.where(hit, self._link_pos[pos], 0).astype(np.int32)
        flags = cols["flags"].copy()
        flags[link == 0] |= np.uint8(FlowFlags.LINK_UNKNOWN)
        idx, plen, paddr = self._routes.lookup(cols["dst_addr"])
        routed = idx >= 0
        if self._finer and n:
            dst = np.ascontiguousarray(cols["dst_addr"], dtype=np.uint8).reshape(-1, 16)
            v4 = np.all(dst[:, :12] == _MAPPED, axis=1)
            for is_v4, length, mask in self._finer:
                rows = np.flatnonzero(routed & (v4 if is_v4 else ~v4) & (plen < length))
                plen[rows] = length
                paddr[rows] = dst[rows] & mask
        flags[~routed] |= np.uint8(FlowFlags.PREFIX_UNKNOWN)
        dst_as = np.where(routed, self._route_as[np.maximum(idx, 0)], cols["dst_as"]).astype(np.uint32)
        out: dict[str, object] = dict(cols)
        out.update(
            {
                # unknown exporters (accepted only when configured so) get "" as PoP/router
                "pop": (np.where(known, pop, len(self.pops)).astype(np.int32), [*self.pops, ""]),
                "router": (np.where(known, router, len(self.router_names)).astype(np.int32), [*self.router_names, ""]),
                "link_id": (link, self.link_ids),
                "dst_prefix": paddr,
                "dst_prefix_len": plen,
                "dst_as": dst_as,
                "flags": flags,
            }
        )
        return Enriched(out, pop, int(np.count_nonzero(link == 0)), int(np.count_nonzero(~routed)))
