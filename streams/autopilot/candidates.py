"""The greedy's candidates on one overloaded link, in the order of docs/autopilot-design.md
§5.3 step 7 (vectorised).

Sort key, most significant first: (a) stickiness (a displaced override being re-placed),
(b) IPv4 before IPv6, (d) most specific alternate, (e) BGP preference of that alternate
(local_pref, AS-path length, origin, MED), then (f) larger first and (g) prefix value.
(c), a peer-requested detour community, is not modelled. Candidates equal on (a)-(e) form a
*class*: the fit rule of the greedy chooses within the best class left.

A PoP link carries thousands of prefixes, so the key is built with numpy for the common
case — a whole route prefix with an exact alternate — and in Python only for split pieces
and prefixes whose alternates are all covering routes.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

import numpy as np

from streams.autopilot import prefixes as px
from streams.autopilot.placement import Placement, Unit


@dataclass(frozen=True, eq=False)
class Candidates:
    """Sorted candidates; ``units[i] is None`` means the whole route prefix ``route[i]``."""

    route: np.ndarray
    rate: np.ndarray
    cls: np.ndarray
    units: list[Unit | None]

    def __len__(self) -> int:
        return int(self.route.shape[0])

    def unit(self, i: int, pl: Placement) -> Unit:
        unit = self.units[i]
        if unit is None:
            r = int(self.route[i])
            unit = Unit(pl.snapshot.prefixes[r], r, float(pl.rate[r]), int(pl.samples[r]))
        return unit


@dataclass(frozen=True)
class Exclusions:
    taken: Collection[px.Prefix]
    """Keys of overrides already in place this cycle."""
    cooling: Collection[px.Prefix]
    deny: Collection[px.Prefix]
    sticky: Collection[px.Prefix]
    """Keys of displaced overrides (ranked first: re-place them before anything else)."""


def candidates_on(
    link: int,
    pl: Placement,
    best_exact: np.ndarray,
    ok_v4: np.ndarray,
    ok_v6: np.ndarray,
    needs_split: Callable[[int], bool],
    split: Callable[[int], list[Unit]],
    ex: Exclusions,
) -> Candidates:
    snap = pl.snapshot
    index = snap.prefix_index
    routes = pl.routes_on(link)
    routes = routes[pl.rate[routes] > 0]
    # Whole route prefixes: excluded keys mapped to indices (a key that is not interned
    # cannot be a whole route prefix).
    blocked = [index[k] for k in (*ex.taken, *ex.cooling) if k in index]
    keep = ~np.isin(routes, blocked)
    if ex.deny:
        keep &= np.array([not any(px.contains(d, snap.prefixes[r]) for d in ex.deny) for r in routes.tolist()], bool)
    routes = routes[keep]
    special = np.array([needs_split(r) for r in routes.tolist()], bool)
    row = best_exact[routes]
    fast = routes[~special & (row >= 0)]
    fast_row = row[~special & (row >= 0)]
    sticky_idx = [index[k] for k in ex.sticky if k in index]
    t = snap.routes
    cols = {
        "sticky": np.where(np.isin(fast, sticky_idx), 0, 1),
        "afi": np.where(snap.prefix_v4[fast], 0, 1),
        "alt_len": -snap.prefix_len[fast].astype(np.int64),
        "lp": -t.local_pref[fast_row],
        "path": t.path_len[fast_row].astype(np.int64),
        "origin": t.origin[fast_row].astype(np.int64),
        "med": t.med[fast_row],
        "rate": pl.rate[fast],
        "hi": snap.prefix_hi[fast],
        "lo": snap.prefix_lo[fast],
        "len": snap.prefix_len[fast].astype(np.int64),
    }
    units: list[Unit | None] = [None] * len(fast)
    slow_routes = []
    slow_units: list[Unit] = []
    for r in routes[special | (row < 0)].tolist():
        alts = pl.alternates(r)
        if not alts:
            continue
        for unit in split(r) if needs_split(r) else [None]:
            key = unit.key if unit is not None else snap.prefixes[r]
            if unit is not None and (
                unit.rate <= 0 or key in ex.taken or key in ex.cooling or any(px.contains(d, key) for d in ex.deny)
            ):
                continue
            ok = ok_v4 if px.is_v4(key) else ok_v6
            best = next((a for a in alts if ok[a.link]), None)
            if best is None:
                continue
            slow_routes.append((r, best, key))
            slow_units.append(unit if unit is not None else Unit(key, r, float(pl.rate[r]), int(pl.samples[r])))
    if slow_routes:
        sr = np.array([x[0] for x in slow_routes], np.int64)
        srow = np.array([x[1].row for x in slow_routes], np.int64)
        keys = [x[2] for x in slow_routes]
        extra = {
            "sticky": np.array([0 if k in ex.sticky else 1 for k in keys]),
            "afi": np.array([0 if px.is_v4(k) else 1 for k in keys]),
            "alt_len": -np.array([x[1].route_len for x in slow_routes], np.int64),
            "lp": -t.local_pref[srow],
            "path": t.path_len[srow].astype(np.int64),
            "origin": t.origin[srow].astype(np.int64),
            "med": t.med[srow],
            "rate": np.array([u.rate for u in slow_units], np.float64),
            "hi": np.array([k[0] >> 64 for k in keys], np.uint64),
            "lo": np.array([k[0] & ((1 << 64) - 1) for k in keys], np.uint64),
            "len": np.array([k[1] for k in keys], np.int64),
        }
        cols = {name: np.concatenate([cols[name], extra[name]]) for name in cols}
        fast = np.concatenate([fast, sr])
        units += slow_units
    # np.lexsort: the last key is the primary one.
    order = np.lexsort(
        (
            cols["len"],
            cols["lo"],
            cols["hi"],
            -cols["rate"],
            cols["med"],
            cols["origin"],
            cols["path"],
            cols["lp"],
            cols["alt_len"],
            cols["afi"],
            cols["sticky"],
        )
    )
    klass = np.stack([cols[n][order] for n in ("sticky", "afi", "alt_len", "lp", "path", "origin", "med")]).astype(
        np.int64
    )
    changes = np.ones(len(order), bool)
    if len(order) > 1:
        changes[1:] = (klass[:, 1:] != klass[:, :-1]).any(axis=0)
    return Candidates(
        route=fast[order], rate=cols["rate"][order], cls=np.cumsum(changes), units=[units[i] for i in order.tolist()]
    )
