"""Plausibility bounds at decode: each implausible flow is refused under its reason, the
honest flows of the same datagram survive, nothing raises (hand-built datagrams)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers.collector.decode.bounds import REFUSED, FlowBounds, Refused, check
from producers.collector.decode.decoder import Decoder, DecoderOptions
from tests.producers.collector.decode.builders import EXPORT_TIME, EXPORTER, ipfix, ipfix_set, ipfix_template, v5

NOW = EXPORT_TIME * 1000  # the receive time of every datagram below
# src, dst, ports, proto, octets (8), packets (8), start/end ms (8), samplingInterval (4)
FIELDS = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (1, 8), (2, 8), (152, 8), (153, 8), (34, 4)]
REC = struct.Struct(">4s4sHHBQQQQI")


def rec(
    port: int, now: int, octets: int = 15_000, packets: int = 10, ago: int = 1_000, dur: int = 4_000, rate: int = 100
) -> bytes:
    """One flow ending ``ago`` ms before ``now``; ``port`` (the source port) tells flows apart."""
    end = now - ago
    return REC.pack(
        bytes([192, 0, 2, 1]), bytes([198, 51, 100, 1]), port, 443, 6, octets, packets, end - dur, end, rate
    )


def bad(now: int) -> list[tuple[int, bytes, str]]:
    """(source port, record, the reason it must be refused under)."""
    return [
        (2001, rec(2001, now, octets=1_000_000, packets=1), Refused.BYTES_PER_PACKET),  # 1 MB packets
        (2002, rec(2002, now, octets=10, packets=1), Refused.BYTES_PER_PACKET),  # below an IP header
        (2003, rec(2003, now, octets=5_000, packets=0), Refused.BYTES_PER_PACKET),  # bytes without packets
        (2004, rec(2004, now, octets=18_000_000_000_000_000_000), Refused.BYTES_PER_PACKET),  # the 1.8e19 case
        (2005, rec(2005, now, octets=100 << 41, packets=1 << 41, rate=1), Refused.PACKETS_PER_FLOW),
        (2006, rec(2006, now, octets=1500 * 10**9, packets=10**9, rate=1000), Refused.SCALED_OVERFLOW),  # > 2^50
        (2007, rec(2007, now, octets=1 << 40, packets=1 << 30, rate=1 << 30), Refused.SCALED_OVERFLOW),  # wraps
        (2008, rec(2008, now, dur=-1), Refused.DURATION),  # ends before it starts
        (2009, rec(2009, now, dur=2 * 86_400_000), Refused.DURATION),  # two days long
        # 1.5e12 bytes in 4 s: 3 Tbit/s in one flow (a mutated sampling rate looks like this)
        (2012, rec(2012, now, octets=1500 * 10**6, packets=10**6, rate=1000), Refused.FLOW_RATE),
        (2013, rec(2013, now, octets=1500, packets=1, rate=1 << 31, dur=0), Refused.FLOW_RATE),  # 25 Tbit/s
        (2010, rec(2010, now, ago=-180_000), Refused.TIME_FUTURE),  # three minutes ahead
        (2011, rec(2011, now, ago=7_200_000), Refused.TIME_PAST),  # two hours old
    ]


def good(now: int) -> list[bytes]:
    return [rec(1000 + i, now, octets=1500 * (i + 1), packets=i + 1) for i in range(5)]


def mixed(now: int = NOW, tid: int = 300, domain: int = 1) -> bytes:
    """One datagram exported at ``now``: the bad flows, each after a good one."""
    body = b"".join(g + b for g, (_, b, _) in zip(good(now) * 3, bad(now)))
    return ipfix([ipfix_template(tid, FIELDS), ipfix_set(tid, body)], domain=domain, export_time=now // 1000)


BAD = bad(NOW)


def test_each_implausible_flow_is_refused_under_its_reason_and_the_good_ones_survive() -> None:
    dec = Decoder(DecoderOptions(bounds=FlowBounds()))
    r = dec.decode([(EXPORTER, mixed(), NOW)])
    expected: dict[str, int] = {}
    for _, _, reason in BAD:
        expected[reason] = expected.get(reason, 0) + 1
    assert dict(r.drops) == expected
    assert set(r.refused) == set(expected)  # one example per reason, for the log
    assert "exporter 192.0.2.1" in r.refused[Refused.TIME_FUTURE]
    kept = r.columns["src_port"].tolist()
    assert sorted(kept) == sorted(1000 + (i % 5) for i in range(len(BAD)))
    assert r.n == len(kept) == len(r.columns["bytes_scaled"])
    # every kept column has the same length, and what is kept is the honest data
    assert {len(v) for v in r.columns.values()} == {r.n}
    assert (r.columns["bytes_scaled"] == r.columns["bytes"] * 100).all()
    assert r.flows[(EXPORTER, "ipfix")] == 2 * len(BAD)  # decoded, before the bounds


def test_without_bounds_nothing_is_refused() -> None:
    r = Decoder().decode([(EXPORTER, mixed(), NOW)])
    assert not r.drops and r.n == 2 * len(BAD)


def test_every_reason_has_a_bad_flow_above() -> None:
    assert {reason for _, _, reason in BAD} == set(REFUSED)


def test_bounds_are_settable() -> None:
    loose = FlowBounds(max_bytes_per_packet=10**7, max_future_s=600, max_duration_s=3 * 86_400)
    r = Decoder(DecoderOptions(bounds=loose)).decode([(EXPORTER, mixed(), NOW)])
    assert (
        r.drops[Refused.BYTES_PER_PACKET] == 3
    )  # 1 MB packets now pass; 10 bytes/packet, bytes w/o packets, 1.8e19 not
    assert Refused.TIME_FUTURE not in r.drops and Refused.DURATION in r.drops  # dur=-1 still refused
    with pytest.raises(ValueError, match="min_bytes_per_packet"):
        FlowBounds(min_bytes_per_packet=100, max_bytes_per_packet=50)


def test_netflow_v5_from_an_exporter_clock_ahead_is_refused() -> None:
    # v5 times are relative to the header's unix_secs: ten minutes ahead of our clock
    dec = Decoder(DecoderOptions(bounds=FlowBounds()))
    r = dec.decode([(EXPORTER, v5(records=3), NOW - 600_000)])
    assert r.n == 0 and r.drops == {Refused.TIME_FUTURE: 3}
    assert dec.decode([(EXPORTER, v5(records=3), NOW)]).n == 3


def test_check_is_columnar_over_a_large_batch() -> None:
    n = 200_000
    rng = np.random.default_rng(7)
    packets = rng.integers(1, 1000, n).astype(np.uint64)
    nbytes = packets * rng.integers(40, 1500, n).astype(np.uint64)
    rate = np.full(n, 1000, np.uint32)
    cols = {
        "bytes": nbytes,
        "packets": packets,
        "sampling_rate": rate,
        "bytes_scaled": nbytes * rate.astype(np.uint64),
        "time_received": np.full(n, NOW, np.int64),
        "time_end": np.full(n, NOW - 500, np.int64),
        "time_start": np.full(n, NOW - 5_000, np.int64),
        "exporter": np.zeros((n, 16), np.uint8),
    }
    cols["time_end"][::1000] = NOW + 3_600_000  # one in a thousand from a broken clock
    v = check(cols, FlowBounds())
    assert v.counts == {Refused.TIME_FUTURE: n // 1000}
    assert int(v.keep.sum()) == n - n // 1000


def test_firewall_events_may_lack_packets_and_outlive_a_day_but_not_flows() -> None:
    """ASA 8.2 teardowns carry bytes without packets, and start when their connection did."""
    day_ms = 86_400_000
    cols = {
        "bytes": np.array([5_000, 5_000, 5_000, 5_000], np.uint64),
        "packets": np.array([0, 0, 10, 10], np.uint64),
        "sampling_rate": np.ones(4, np.uint32),
        "bytes_scaled": np.array([5_000] * 4, np.uint64),
        "time_received": np.full(4, NOW, np.int64),
        "time_end": np.full(4, NOW - 500, np.int64),
        "time_start": np.array([NOW - 5_000, NOW - 5_000, NOW - 3 * day_ms, NOW - 3 * day_ms], np.int64),
        "exporter": np.zeros((4, 16), np.uint8),
        # a teardown without packets, a flow without packets, a 3-day teardown, a 3-day flow
        "fw_event": np.array([2, 0, 2, 0], np.uint8),
    }
    v = check(cols, FlowBounds())
    assert v.keep.tolist() == [True, False, True, False]
    assert v.counts == {Refused.BYTES_PER_PACKET: 1, Refused.DURATION: 1}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), min_size=1, max_size=24))
def test_mutated_datagrams_never_publish_a_flow_outside_the_bounds(mutations: list[tuple[int, int]]) -> None:
    # the fault harness's case: a real exporter's datagrams with random bytes changed
    dec = Decoder(DecoderOptions(bounds=FlowBounds()))
    dec.decode([(EXPORTER, ipfix([ipfix_template(300, FIELDS)]), NOW)])
    data = bytearray(ipfix([ipfix_set(300, b"".join(good(NOW) * 6))]))
    for pos, value in mutations:
        data[16 + pos % (len(data) - 16)] = value  # the IPFIX header stays, so the data is decoded
    r = dec.decode([(EXPORTER, bytes(data), NOW)])
    c = {k: v.astype(np.float64) for k, v in r.columns.items() if k not in ("exporter", "src_addr", "dst_addr")}
    b = FlowBounds()
    assert (c["bytes"] >= b.min_bytes_per_packet * c["packets"]).all()
    assert (c["bytes"] <= b.max_bytes_per_packet * c["packets"]).all()
    assert (c["packets"] <= b.max_packets_per_flow).all()
    assert (c["bytes_scaled"] <= b.max_scaled_bytes).all()
    assert (r.columns["bytes_scaled"] == r.columns["bytes"] * r.columns["sampling_rate"].astype(np.uint64)).all()
    assert (c["time_end"] >= c["time_start"]).all()
    assert (np.abs(c["time_end"] - NOW) <= b.max_past_s * 1000).all()
    assert (c["bytes_scaled"] * 8 <= b.max_flow_bps * np.maximum(c["time_end"] - c["time_start"], 1000) / 1000).all()
    assert sum(r.flows.values()) == r.n + sum(r.drops[x] for x in REFUSED)  # every decoded flow accounted for
