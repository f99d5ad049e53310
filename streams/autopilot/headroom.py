"""Shared alternate headroom, allocated jointly across a PoP's overloads (§5.3 step 7).

Served one after the other, two overloaded links with one common alternate do not share it:
the first fills it, the second stays overloaded although stopping the first at its target
would have resolved both. Before the greedy places anything, a small linear programme
splits every alternate's room between the overloaded links that can use it:

    minimise    t  -  delta * sum(w[l, a] * x[l, a] / C[l])
    subject to  (excess[l] - sum_a x[l, a]) / C[l] <= t     for each overloaded link l
                sum_a x[l, a]                      <= excess[l]
                sum_l x[l, a]                      <= room[a]  for each alternate a
                0 <= x[l, a] <= movable[l, a]

that is: the worst residual overload above target as small as possible (min-max), then as
much relief in total as the room allows. ``x[l, a]`` becomes l's *reservation* on a: while
the greedy serves another link, it may use a's room only beyond what is reserved for the
links still to be served (planner.py). The weights w favour the links served later and the
alternates several links can use, so the room left over after the min-max goes to
reservations rather than to the link served first (which would take a contended alternate
before its private one, being the one it prefers). ``excess`` includes a prefix's worth per
link (planner._excess): room splits as a fluid, prefixes do not. HiGHS solves it deterministically (same input, same
answer); a PoP has a handful of overloads and tens of alternates, so it takes milliseconds.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog

from streams.autopilot.candidates import Candidates
from streams.autopilot.placement import Placement

_DELTA = 1e-3


def movable(pl: Placement, cands: Candidates, ok_v4: np.ndarray, ok_v6: np.ndarray) -> np.ndarray:
    """Per link of the PoP, the bps of ``cands`` that have a usable route there (each
    candidate counted once per link): an upper bound of what could move to it."""
    n_links = len(pl.snapshot.links)
    out = np.zeros(n_links)
    whole = np.array([u is None for u in cands.units], bool)
    if whole.any():  # whole route prefixes with an exact alternate: vectorised over the RIB
        routes = cands.route[whole].astype(np.int64)
        rates = cands.rate[whole]
        start = pl.route_ptr[routes]
        count = pl.route_ptr[routes + 1] - start
        owner = np.repeat(np.arange(len(routes)), count)
        pos = np.repeat(start - np.cumsum(count) + count, count) + np.arange(int(count.sum()))
        rows = pl.rows[pos]
        link = pl.snapshot.routes.link[rows]
        v4 = pl.snapshot.prefix_v4[routes][owner]
        usable = np.where(v4, ok_v4[link], ok_v6[link]) & ~pl.is_native_row(pos)
        key = np.unique(owner[usable].astype(np.int64) * max(n_links, 1) + link[usable])
        out += np.bincount(key % max(n_links, 1), weights=rates[key // max(n_links, 1)], minlength=n_links)
    for i in np.flatnonzero(~whole).tolist():  # split pieces, covering-only alternates: few
        unit = cands.units[i]
        assert unit is not None
        ok = ok_v4 if pl.snapshot.prefix_v4[unit.route] else ok_v6
        for alt in pl.alternates(unit.route):
            if ok[alt.link]:
                out[alt.link] += cands.rate[i]
    return out


def reservations(
    excess: np.ndarray, cap: np.ndarray, movable: np.ndarray, room: np.ndarray
) -> tuple[np.ndarray, float]:
    """(x[l, a], t) of the programme above: ``excess`` and ``cap`` per overloaded link (bps),
    ``movable`` (overloaded links x PoP links) and ``room`` per PoP link (bps); t is the
    worst residual overload above target (a fraction of capacity, 0 when all fit)."""
    n, m = movable.shape
    x = np.zeros((n, m))
    worst = float(np.max(np.maximum(excess, 0.0) / cap, initial=0.0))
    usable = (movable > 0) & (room > 0)[None, :] & (excess > 0)[:, None]
    if not usable.any():
        return x, worst
    li, ai = np.nonzero(usable)
    e = len(li)
    scale = float(cap.max())  # in units of the largest capacity: a well-conditioned programme
    users = usable.sum(axis=0)
    weight = (1.0 + li) * (1.0 + 0.5 * (users[ai] - 1))  # served later, contended: reserve first
    c = np.concatenate([-_DELTA * scale * weight / weight.max() / cap[li] / n, [1.0]])
    rows, rhs = [], []
    for l in range(n):
        on = li == l
        if not on.any():
            continue
        row = np.zeros(e + 1)
        row[:e][on] = -scale / cap[l]
        row[e] = -1.0
        rows.append(row)
        rhs.append(-excess[l] / cap[l])
        row = np.zeros(e + 1)
        row[:e][on] = 1.0
        rows.append(row)
        rhs.append(excess[l] / scale)
    for a in np.unique(ai).tolist():
        row = np.zeros(e + 1)
        row[:e][ai == a] = 1.0
        rows.append(row)
        rhs.append(room[a] / scale)
    bounds = [(0.0, float(v) / scale) for v in movable[li, ai]] + [(0.0, None)]
    res = linprog(c, A_ub=np.array(rows), b_ub=np.array(rhs), bounds=bounds, method="highs")
    if res.status != 0:
        return x, worst  # cannot happen for this programme (x = 0 is feasible); serve in order then
    x[li, ai] = np.maximum(0.0, res.x[:e]) * scale
    return x, max(0.0, float(res.x[e]))
