"""Fewest moves for the relief needed (docs/autopilot-design.md §5.3 step 7).

The greedy used to take, within the best class of candidates left, the prefixes that fit in
sort order: with many small prefixes in the best class it made 11 moves where 3 prefixes of
a slightly less preferred class gave the same relief. Here the count comes first:

* the *pool* is the candidates that fit the remaining excess R (rate <= R x (1 + eps)) when
  together they can cover it, otherwise every candidate (one oversize move beats many that
  cannot finish the job);
* k = the fewest candidates of the pool whose rates add up to R (the top k by size): a lower
  bound for any selection from it;
* among the classes (stickiness, family, alternate specificity and preference; see
  candidates.py), the pool is narrowed to the best classes that still reach k, so preference
  decides only what does not cost a move;
* then k candidates are picked one at a time, each the *smallest* that still lets the rest
  reach R (a knapsack-style pass that keeps the overshoot small), and returned largest first.

Everything here is a few numpy passes over one link's candidates, per pick.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from streams.autopilot.policy import Policy


def pool(rates: np.ndarray, alive: np.ndarray, remaining: float, eps: float) -> np.ndarray:
    """Mask of the candidates a selection for ``remaining`` bps draws from."""
    fit = alive & (rates <= remaining * (1 + eps))
    return fit if rates[fit].sum() >= remaining else alive


def fewest(rates: np.ndarray, mask: np.ndarray, remaining: float) -> int | None:
    """Fewest candidates of ``mask`` that add up to ``remaining``; None when all of them cannot."""
    if remaining <= 0:
        return 0
    top = np.sort(rates[mask])[::-1].cumsum()
    k = int(np.searchsorted(top, remaining * (1 - 1e-12)))  # first prefix sum >= remaining
    return k + 1 if k < len(top) else None


def lower_bound(rates: np.ndarray, remaining: float, eps: float) -> int:
    """The simple lower bound of one link's moves: the fewest candidates, largest first, that
    relieve ``remaining`` bps (from the pool above; all of them when they cannot)."""
    alive = np.ones(len(rates), bool)
    mask = pool(rates, alive, remaining, eps)
    k = fewest(rates, mask, remaining)
    return int(mask.sum()) if k is None else k


def grain(rates: np.ndarray, remaining: float, eps: float) -> float:
    """A typical move of one link: the median size in its pool, at most half its excess
    (headroom.py reserves this much more than the excess for granularity)."""
    mask = pool(rates, np.ones(len(rates), bool), remaining, eps)
    return float(min(np.median(rates[mask]), remaining / 2)) if mask.any() and remaining > 0 else 0.0


def choose(rates: np.ndarray, cls: np.ndarray, alive: np.ndarray, remaining: float, eps: float) -> list[int]:
    """Indices to move for ``remaining`` bps, largest first; [] when nothing is alive."""
    mask = pool(rates, alive, remaining, eps)
    if not mask.any():
        return []
    k = fewest(rates, mask, remaining)
    if k is None:  # cannot be covered: the most relief per move, largest first
        idx = np.flatnonzero(mask)
        return idx[np.argsort(-rates[idx], kind="stable")].tolist()
    mask = _best_classes(rates, cls, mask, remaining, k)
    picked: list[int] = []
    left = remaining
    for need in range(k, 0, -1):
        idx = np.flatnonzero(mask)
        order = idx[np.argsort(-rates[idx], kind="stable")]  # by size, then candidate order
        sizes = rates[order]
        head = sizes[: need - 1].sum()
        # The smallest that still lets the largest (need - 1) others reach what is left.
        ok = np.flatnonzero(sizes[need - 1 :] >= left - head)
        pos = need - 1 + (int(ok[-1]) if len(ok) else 0)
        # Among equal sizes the first in candidate order (the better class): same sizes, same sums.
        pick = int(order[int(np.flatnonzero(sizes == sizes[pos])[0])])
        picked.append(pick)
        mask[pick] = False
        left -= rates[pick]
    return sorted(picked, key=lambda i: (-rates[i], i))


def _best_classes(rates: np.ndarray, cls: np.ndarray, mask: np.ndarray, remaining: float, k: int) -> np.ndarray:
    """``mask`` narrowed to the best classes (lowest ``cls``) whose top k still cover ``remaining``."""
    classes = np.unique(cls[mask])
    lo, hi = 0, len(classes) - 1  # the last one (every class) is known to reach k
    while lo < hi:
        mid = (lo + hi) // 2
        narrowed = mask & (cls <= classes[mid])
        top = np.sort(rates[narrowed])[::-1][:k].sum()
        if top >= remaining * (1 - 1e-12):
            hi = mid
        else:
            lo = mid + 1
    return mask & (cls <= classes[lo])


def budgets(need: Sequence[int], policy: Policy) -> tuple[list[int], int]:
    """(ADDs per overloaded link, ADDs for the PoP) this cycle.

    Sized to the need unless ``max_adds_per_cycle`` fixes the PoP's: a link may make
    ``ceil(add_budget_slack x its lower bound) + 2`` moves (room for moves that find no
    alternate), at most ``max_adds_per_link``, and the PoP the sum of its links'. A fixed
    ``max_adds_per_cycle`` is a plain cap, as in the original design, and each link then has
    ``max_adds_per_link``. Either way the validation of §5.3 step 9 still rejects a diff
    above ``max_changes_per_cycle``: a budget sized to the need must not hide an input that
    asks for an implausible number of moves.
    """
    if policy.max_adds_per_cycle is not None:
        return [policy.max_adds_per_link] * len(need), policy.max_adds_per_cycle
    per_link = [min(policy.max_adds_per_link, math.ceil(policy.add_budget_slack * k) + 2) for k in need]
    return per_link, sum(per_link)
