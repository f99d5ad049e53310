"""Rate math on recorded sequences: steady traffic, 64-bit wrap, agent restart, discontinuity."""

from __future__ import annotations

import numpy as np
import pytest

from producers.linkstats.rates import COUNTER64_MOD, TIMETICKS_MOD, Reading, agent_restarted, compute_rates

TEN_G = 10e9


def _r(
    ts: float,
    uptime: int,
    out: list[int],
    inn: list[int] | None = None,
    disc: list[int] | None = None,
    speed: float = TEN_G,
) -> Reading:
    n = len(out)
    return Reading(
        ts,
        uptime,
        np.array(out, dtype=np.uint64),
        np.array(inn if inn is not None else out, dtype=np.uint64),
        np.array(disc or [0] * n, dtype=np.uint32),
        np.full(n, speed),
    )


def _series(readings: list[Reading]) -> list:
    return [compute_rates(a, b) for a, b in zip(readings, readings[1:])]


def test_steady_traffic() -> None:
    # ~50 Mbit/s polled every ~5 s with jittered poll times
    seq = [
        _r(1000.00, 5000, [1_012_344]),
        _r(1005.01, 5501, [32_357_210]),
        _r(1010.00, 6000, [63_551_988]),
        _r(1015.02, 6502, [94_934_110]),
    ]
    rates = _series(seq)
    for r in rates:
        assert not r.reset.any() and not r.wrapped.any()
    assert rates[0].out_delta[0] == 31_344_866
    assert rates[0].out_bps[0] == pytest.approx(31_344_866 * 8 / 5.01)
    assert [round(r.out_bps[0] / 1e6, 1) for r in rates] == [50.1, 50.0, 50.0]


def test_64bit_wrap_is_unrolled() -> None:
    near_top = COUNTER64_MOD - 1_000
    seq = [_r(0.0, 100, [near_top, 5]), _r(10.0, 1100, [1_249_000, 1_250_005])]
    (r,) = _series(seq)
    assert list(r.out_delta) == [1_250_000, 1_250_000]
    assert list(r.wrapped) == [True, False]
    assert not r.reset.any()
    assert r.out_bps[0] == pytest.approx(1e6)


def test_agent_restart_sysuptime_back_resets_every_interface() -> None:
    # snmpd restarted between polls: uptime 90 s -> 3 s, counters re-read from the kernel
    seq = [_r(0.0, 9000, [10_000_000, 77]), _r(10.0, 300, [10_500_000, 80])]
    (r,) = _series(seq)
    assert r.agent_restarted
    assert list(r.reset) == [True, True]
    assert list(r.out_delta) == [-1, -1] and np.isnan(r.out_bps).all()


def test_first_poll_reading_zero_is_not_traffic() -> None:
    # Net-SNMP answers 0 on its first poll after start, the real value the poll after
    seq = [_r(0.0, 100, [0]), _r(5.0, 600, [3_000_000_000]), _r(10.0, 1100, [3_000_625_000])]
    rates = _series(seq)
    assert rates[0].reset[0] and np.isnan(rates[0].out_bps[0])
    assert not rates[1].reset[0] and rates[1].out_bps[0] == pytest.approx(1e6)


def test_counter_going_back_without_restart_is_a_reset_not_a_wrap() -> None:
    # the interface's counters were cleared: 5e9 -> 1e3 would "wrap" to ~2**64 octets
    (r,) = _series([_r(0.0, 100, [5_000_000_000]), _r(10.0, 1100, [1_000])])
    assert r.reset[0] and not r.wrapped[0] and not r.agent_restarted


def test_discontinuity_time_change_resets_that_interface_only() -> None:
    seq = [_r(0.0, 100, [1_000, 1_000], disc=[0, 0]), _r(10.0, 1100, [2_000, 2_000], disc=[0, 1050])]
    (r,) = _series(seq)
    assert list(r.reset) == [False, True]
    assert r.out_delta[0] == 1_000


def test_implausible_jump_is_a_reset() -> None:
    # 1 Gbit/s link (floor 1 Gbit/s x 1.5): 10 s can carry at most 1.875e9 octets
    seq = [_r(0.0, 100, [1_000], speed=1e9), _r(10.0, 1100, [10_000_000_000], speed=1e9)]
    (r,) = _series(seq)
    assert r.reset[0]


def test_sysuptime_32bit_wrap_is_not_a_restart() -> None:
    prev = _r(0.0, TIMETICKS_MOD - 500, [1_000])
    cur = _r(10.0, 500, [2_000])
    assert not agent_restarted(prev, cur)
    (r,) = _series([prev, cur])
    assert not r.reset[0] and r.out_delta[0] == 1_000


def test_clock_going_back_gives_no_rate() -> None:
    (r,) = _series([_r(10.0, 1000, [1_000]), _r(5.0, 1500, [2_000])])
    assert r.reset[0]
