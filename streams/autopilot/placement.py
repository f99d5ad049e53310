"""Native placement, demand per prefix and the candidate units of the greedy
(docs/autopilot-design.md §5.3 steps 2-5).

Vectorised where the work is per route or per demand row (best path, demand mapping, U0);
per-prefix Python only for what the greedy actually looks at (candidates on overloaded
links, their alternates and splits), which is a small part of a PoP's table.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import repeat
from typing import NamedTuple

import numpy as np

from streams.autopilot import prefixes as px
from streams.autopilot.model import MAX_SAMPLES, Snapshot


@dataclass(frozen=True, slots=True)
class Unit:
    """What the planner moves: a route prefix or, when split, one of its more-specifics."""

    key: px.Prefix
    route: int
    """Index of the route prefix it belongs to (natives and alternates come from it)."""
    rate: float
    samples: int
    split_from: int | None = None


class Alternate(NamedTuple):
    """A path usable as an alternate (a NamedTuple: built by the 1e5 per cycle)."""

    link: int
    row: int
    """Route row in the snapshot's RouteTable."""
    route_len: int
    """Mapped length of that route: longer = more specific (exact before covering)."""


class Placement:
    """Everything derived from routes and demand that does not depend on the overrides."""

    def __init__(self, snapshot: Snapshot, link_up: np.ndarray) -> None:
        self.snapshot = snapshot
        n_links = len(snapshot.links)
        n_prefixes = len(snapshot.prefixes)
        r = snapshot.routes
        usable = np.nonzero(~r.own & link_up[r.link])[0] if len(r) else np.zeros(0, np.int64)
        # Best path per prefix: local_pref > AS-path length > origin > MED; the rows tied on all
        # of these form the multipath (ECMP) set, split equally.
        # Ties end at the link id (not its position), so a snapshot rebuilt in another order
        # (a restarted worker reading its tables) ranks equal paths the same way.
        link_rank = np.empty(n_links, np.int64)
        link_rank[sorted(range(n_links), key=lambda i: snapshot.links[i].link_id)] = np.arange(n_links)
        order = np.lexsort(
            (
                link_rank[r.link[usable]],
                r.med[usable],
                r.origin[usable],
                r.path_len[usable],
                -r.local_pref[usable],
                r.prefix[usable],
            )
        )
        rows = usable[order]
        self.rows = rows
        pfx = r.prefix[rows]
        counts = np.bincount(pfx, minlength=n_prefixes)
        self.route_ptr = np.concatenate(([0], np.cumsum(counts)))
        starts = np.ones(len(rows), bool)
        starts[1:] = pfx[1:] != pfx[:-1]
        best = rows[starts][np.cumsum(starts) - 1]
        tie = (
            (r.local_pref[rows] == r.local_pref[best])
            & (r.path_len[rows] == r.path_len[best])
            & (r.origin[rows] == r.origin[best])
            & (r.med[rows] == r.med[best])
        )
        nat_pfx = pfx[tie]
        nat_link = r.link[rows[tie]]
        if len(nat_pfx):  # several paths of one prefix on one link (add-path) count once
            keep = np.ones(len(nat_pfx), bool)
            keep[1:] = (nat_pfx[1:] != nat_pfx[:-1]) | (nat_link[1:] != nat_link[:-1])
            nat_pfx, nat_link = nat_pfx[keep], nat_link[keep]
        self.native_count = np.bincount(nat_pfx, minlength=n_prefixes)
        self.native_ptr = np.concatenate(([0], np.cumsum(self.native_count)))
        self.native_link = nat_link
        self.native_owner = nat_pfx
        self.has_route = self.native_count > 0
        # Route lengths per family, longest first: the longest-prefix-match walks try only these.
        v4 = snapshot.prefix_v4[pfx]
        self._lengths_v4 = sorted(np.unique(snapshot.prefix_len[pfx][v4]).tolist(), reverse=True)
        self._lengths_v6 = sorted(np.unique(snapshot.prefix_len[pfx][~v4]).tolist(), reverse=True)
        # Python lists for the per-candidate walks: numpy scalar indexing costs ~100 ns a go.
        self._ptr = self.route_ptr.tolist()
        self._sorted_rows = rows.tolist()
        self._sorted_links = r.link[rows].tolist()

        # Demand -> the longest route prefix that covers it (most rows match exactly).
        d = snapshot.demand
        mapped = np.where(self.has_route[d.prefix], d.prefix, -1).astype(np.int64)
        for i in np.nonzero(mapped < 0)[0]:
            mapped[i] = self.covering_route(snapshot.prefixes[d.prefix[i]], strict=False)
        self.demand_route = mapped
        movable = mapped >= 0
        self.rate = np.bincount(mapped[movable], weights=d.rate_bps[movable], minlength=n_prefixes)
        samples = np.bincount(mapped[movable], weights=d.samples[movable], minlength=n_prefixes)
        self.samples = np.minimum(samples, MAX_SAMPLES).astype(np.int64)  # a float sum, clamped before the cast
        self.observed = np.bincount(d.link, weights=d.rate_bps, minlength=n_links)
        self.unroutable = np.bincount(d.link[~movable], weights=d.rate_bps[~movable], minlength=n_links)
        share = np.repeat(self.rate / np.maximum(self.native_count, 1), self.native_count)
        self.native_load = np.bincount(nat_link, weights=share, minlength=n_links)
        self._tie = tie
        self._nat_keys = nat_pfx.astype(np.int64) * max(n_links, 1) + nat_link
        self._nat_sorted = np.unique(self._nat_keys)
        self._alt_cache: dict[int, tuple[Alternate, ...]] = {}
        self._paths_cache: dict[int, tuple[Alternate, ...]] = {}
        self._demand_order: np.ndarray | None = None
        self._demand_sorted = np.zeros(0, np.int64)

    # -- lookups ---------------------------------------------------------------------------
    def natives(self, route: int) -> np.ndarray:
        return self.native_link[self.native_ptr[route] : self.native_ptr[route + 1]]

    def routes_on(self, link: int) -> np.ndarray:
        """Route prefixes with ``link`` in their native set."""
        return self.native_owner[self.native_link == link]

    def covering_route(self, key: px.Prefix, *, strict: bool) -> int:
        """Longest route prefix (with a usable path) covering ``key``; -1 if none."""
        index = self.snapshot.prefix_index
        for mlen in self._lengths_v4 if px.is_v4(key) else self._lengths_v6:
            if mlen > key[1] or (strict and mlen == key[1]):
                continue
            idx = index.get(px.supernet(key, mlen))
            if idx is not None and self.has_route[idx]:
                return idx
        return -1

    def alternates(self, route: int) -> tuple[Alternate, ...]:
        """Routes for ``route`` on non-native links: the most specific per link (exact, then
        covering), ordered most specific first, then by BGP preference."""
        cached = self._alt_cache.get(route)
        if cached is not None:
            return cached
        snap = self.snapshot
        key = snap.prefixes[route]
        seen = set(self.natives(route).tolist())
        out: list[Alternate] = []
        index = snap.prefix_index
        net, klen = key
        for mlen in self._lengths_v4 if snap.prefix_v4[route] else self._lengths_v6:
            if mlen > klen:
                continue
            idx = route if mlen == klen else index.get((net & px.mask(mlen), mlen))
            if idx is None:
                continue
            for alt in self._paths(idx):
                if alt.link not in seen:
                    seen.add(alt.link)
                    out.append(alt)
        result = tuple(out)
        self._alt_cache[route] = result
        return result

    def _paths(self, idx: int) -> tuple[Alternate, ...]:
        """Usable paths of one route prefix in preference order; shared by every more-specific
        that it covers (a /8 aggregate is looked at once, not once per /24 under it)."""
        paths = self._paths_cache.get(idx)
        if paths is None:
            mlen = self.snapshot.prefixes[idx][1]
            lo, hi = self._ptr[idx], self._ptr[idx + 1]
            paths = tuple(map(Alternate._make, zip(self._sorted_links[lo:hi], self._sorted_rows[lo:hi], repeat(mlen))))
            self._paths_cache[idx] = paths
        return paths

    def best_exact(self, alt_ok: np.ndarray, alt_ok_v6: np.ndarray) -> np.ndarray:
        """Per route prefix, the route row of its best usable *exact* alternate, or -1.

        An exact alternate is always the most specific one, so for most prefixes this gives
        the sort key of the greedy without walking covering routes (vectorised over the RIB).
        """
        snap, rows = self.snapshot, self.rows
        best = np.full(len(snap.prefixes), -1, np.int64)
        if not len(rows):
            return best
        pfx = snap.routes.prefix[rows]
        link = snap.routes.link[rows]
        ok = np.where(snap.prefix_v4[pfx], alt_ok[link], alt_ok_v6[link])
        on_native = self._on_native(pfx.astype(np.int64) * max(len(snap.links), 1) + link)
        pos = np.flatnonzero(ok & ~self._tie & ~on_native)
        first_pfx, first = np.unique(pfx[pos], return_index=True)  # rows are in preference order
        best[first_pfx] = rows[pos[first]]
        return best

    def is_native_row(self, pos: np.ndarray) -> np.ndarray:
        """Whether the route rows at positions ``pos`` of ``self.rows`` are on one of their
        prefix's native links (the best path, or another path over a native link)."""
        r = self.snapshot.routes
        rows = self.rows[pos]
        key = r.prefix[rows].astype(np.int64) * max(len(self.snapshot.links), 1) + r.link[rows]
        return self._tie[pos] | self._on_native(key)

    def _on_native(self, keys: np.ndarray) -> np.ndarray:
        """``prefix * n_links + link`` keys that are (prefix, one of its native links); a
        binary search in the sorted native keys (np.isin would sort both sides each call)."""
        nat = self._nat_sorted
        if not len(nat):
            return np.zeros(len(keys), bool)
        at = np.minimum(np.searchsorted(nat, keys), len(nat) - 1)
        return nat[at] == keys

    def demand_rows(self, route: int) -> np.ndarray:
        """Demand rows mapped to ``route`` (a binary search: splits may ask for many routes)."""
        if self._demand_order is None:
            self._demand_order = np.argsort(self.demand_route, kind="stable")
            self._demand_sorted = self.demand_route[self._demand_order]
        lo, hi = np.searchsorted(self._demand_sorted, [route, route + 1])
        return self._demand_order[lo:hi]


def split_units(
    placement: Placement, route: int, threshold: float, min_len: int, pinned: frozenset[px.Prefix]
) -> list[Unit]:
    """The units of one route prefix: itself, or halves (recursively) while a half carries
    more than ``threshold`` and the demand rows are fine-grained enough to tell the halves
    apart. ``pinned`` are prefixes of existing overrides: they are kept as units (stickiness),
    so a route prefix is split down to them and never split below them."""
    snap = placement.snapshot
    rows = placement.demand_rows(route)
    entries = [
        (snap.prefixes[snap.demand.prefix[i]], float(snap.demand.rate_bps[i]), int(snap.demand.samples[i]))
        for i in rows.tolist()
    ]
    root = snap.prefixes[route]
    out: list[Unit] = []

    def visit(key: px.Prefix, part: list[tuple[px.Prefix, float, int]]) -> None:
        rate = sum(e[1] for e in part)
        samples = sum(e[2] for e in part)
        pinned_inside = any(px.contains(key, p) and p != key for p in pinned)
        wants = key not in pinned and (rate > threshold or pinned_inside)
        supported = key[1] < min_len and all(e[0][1] > key[1] for e in part)
        if not (wants and supported):
            if part or key in pinned:
                out.append(Unit(key, route, rate, samples, None if key == root else route))
            return
        lo, hi = px.halves(key)
        upper = [e for e in part if px.in_upper_half(key, e[0])]
        lower = [e for e in part if not px.in_upper_half(key, e[0])]
        for half, sub in ((lo, lower), (hi, upper)):
            if sub or any(px.contains(half, p) for p in pinned):
                visit(half, sub)

    visit(root, entries)
    return out
