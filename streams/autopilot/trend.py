"""Release hysteresis over a window of cycles (docs/autopilot-design.md §5.3 step 8).

A release returns traffic to its native links, so it must rest on the *trend* of their
demand, not on one reading: rates of one cycle can be low for reasons that are not the
demand (flow windows still filling after a restart, a window closed before every exporter's
flows were in, a sampling dip). The planner state keeps, per link, U0 (utilisation as if no
override were in place) of the last ``release_cycles - 1`` planning cycles; a release is
judged against the *peak* of that window and this cycle's U0, and only once the window is
full. In the limit (every override of a link returned) this is "U0 stayed under the release
threshold for the whole window"; while other overrides stay, it is the gradual unwind of
APS measured against the worst recent demand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def window(
    history: Mapping[str, Sequence[float]], link_ids: Sequence[str], u0_now: np.ndarray, cycles: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per link: (peak U0 over the last ``cycles`` cycles, this one included; whether that
    window is full). A link with no history has only this cycle's reading."""
    keep = cycles - 1
    peak = np.array(u0_now, np.float64, copy=True)
    full = np.full(len(link_ids), keep == 0, bool)
    if keep == 0:
        return peak, full
    for i, link_id in enumerate(link_ids):
        past = history.get(link_id, ())[-keep:]
        if past:
            peak[i] = max(peak[i], max(past))
        full[i] = len(past) >= keep
    return peak, full


def advance(
    history: Mapping[str, Sequence[float]], link_ids: Sequence[str], u0_now: np.ndarray, cycles: int
) -> dict[str, tuple[float, ...]]:
    """The history the next cycle needs: the last ``cycles - 1`` U0 readings per link of the
    snapshot (oldest first). Links gone from the snapshot are forgotten."""
    keep = cycles - 1
    if keep == 0:
        return {}
    out = {}
    for i, link_id in enumerate(link_ids):
        past = tuple(history.get(link_id, ()))
        out[link_id] = (*past, round(float(u0_now[i]), 6))[-keep:]
    return dict(sorted(out.items()))
