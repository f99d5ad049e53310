"""Counter deltas and rates between two polls of one agent: pure, vectorised over interfaces.

Rules, in order (an interval with any of them gets no rate, ``reset`` is set):

1. **Agent restart**: sysUpTime went back. sysUpTime is a 32-bit TimeTicks that wraps
   after 497 days, so "went back" means the modular uptime advance disagrees with the wall
   clock (by more than ``max(2 s, 10 %)``), not merely ``cur < prev``.
2. **Discontinuity**: ifCounterDiscontinuityTime changed (interface re-created, counters
   cleared) — RFC 2863's own signal that deltas across it are meaningless.
3. **Zero baseline**: the previous reading was 0 and this one is not. Net-SNMP answers 0
   for a counter on its first poll after start; a delta from that 0 would report the whole
   lifetime of the interface as one interval of traffic.
4. **Backwards or implausible**: a counter that went back is a 64-bit wrap only if the
   wrapped delta is a plausible rate (``<= max(speed, floor) * slack``); otherwise it is a
   reset. A forward jump beyond that same bound is also treated as a reset.

Everything is numpy over the interfaces of one agent, computed once per poll.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COUNTER64_MOD = 1 << 64
TIMETICKS_MOD = 1 << 32


@dataclass(frozen=True)
class Reading:
    """One poll of one agent: wall time, sysUpTime and per-interface counters."""

    ts: float
    """Unix seconds (midpoint of request and response)."""
    uptime_ticks: int
    """sysUpTime.0 in hundredths of a second."""
    out_octets: np.ndarray  # uint64, one per interface (same order in both readings)
    in_octets: np.ndarray  # uint64
    discontinuity: np.ndarray  # uint32 ifCounterDiscontinuityTime ticks
    speed_bps: np.ndarray  # float64, 0 = unknown


@dataclass(frozen=True)
class Rates:
    interval_s: float
    agent_restarted: bool
    reset: np.ndarray  # bool: no rate for this interface in this interval
    wrapped: np.ndarray  # bool: a 64-bit wrap was unrolled (rate is valid)
    out_delta: np.ndarray  # int64, -1 where reset
    in_delta: np.ndarray  # int64, -1 where reset
    out_bps: np.ndarray  # float64, NaN where reset
    in_bps: np.ndarray  # float64, NaN where reset


def agent_restarted(prev: Reading, cur: Reading) -> bool:
    """True when sysUpTime says the agent restarted between the readings."""
    wall = cur.ts - prev.ts
    advance = ((cur.uptime_ticks - prev.uptime_ticks) % TIMETICKS_MOD) / 100.0
    return abs(advance - wall) > max(2.0, 0.1 * wall)


def compute_rates(prev: Reading, cur: Reading, *, slack: float = 1.5, floor_bps: float = 1e9) -> Rates:
    """Deltas and bit rates per interface between two readings of the same agent.

    ``slack`` x ``max(speed, floor_bps)`` is the fastest believable rate; above it a delta
    is a reset, not traffic. The floor covers agents that report speed 0 or too low.
    """
    interval = cur.ts - prev.ts
    n = len(cur.out_octets)
    restarted = agent_restarted(prev, cur)
    if interval <= 0:
        restarted = True  # clock went back: nothing trustworthy in this interval
    reset = np.full(n, restarted, dtype=bool)
    reset |= cur.discontinuity != prev.discontinuity
    limit_octets = np.maximum(cur.speed_bps, floor_bps) * slack * max(interval, 0.0) / 8.0

    out_delta, out_reset, out_wrap = _delta(prev.out_octets, cur.out_octets, limit_octets)
    in_delta, in_reset, in_wrap = _delta(prev.in_octets, cur.in_octets, limit_octets)
    reset |= out_reset | in_reset
    out_delta[reset] = -1
    in_delta[reset] = -1
    with np.errstate(invalid="ignore", divide="ignore"):
        seconds = interval if interval > 0 else np.nan
        out_bps = np.where(reset, np.nan, out_delta * 8.0 / seconds)
        in_bps = np.where(reset, np.nan, in_delta * 8.0 / seconds)
    return Rates(interval, restarted, reset, (out_wrap | in_wrap) & ~reset, out_delta, in_delta, out_bps, in_bps)


def _delta(prev: np.ndarray, cur: np.ndarray, limit: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    prev = prev.astype(np.uint64, copy=False)
    cur = cur.astype(np.uint64, copy=False)
    # uint64 subtraction is modulo 2**64: for cur < prev it *is* the unrolled wrap.
    with np.errstate(over="ignore"):
        raw = cur - prev
    backwards = cur < prev
    zero_baseline = (prev == 0) & (cur != 0)
    implausible = raw.astype(np.float64) > limit
    reset = zero_baseline | implausible
    wrapped = backwards & ~implausible
    delta = np.where(reset, 0, raw).astype(np.int64)
    return delta, reset, wrapped
