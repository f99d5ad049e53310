"""Bad input never crashes the decoder: each case is counted by reason, memory stays bounded."""

from __future__ import annotations

import os
import random
import struct
import tracemalloc

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers.collector.decode.decoder import Decoder, DecoderOptions
from producers.collector.decode.errors import Reason
from tests.producers.collector.conftest import LOOPBACK
from tests.producers.collector.decode.builders import (
    EXPORTER,
    V4_FIELDS,
    field_specs,
    ipfix,
    ipfix_set,
    ipfix_template,
    v4_record,
    v5,
    v9,
    v9_template,
)
from tests.producers.collector.decode.vendors import (
    H3C_FIELDS,
    JUNIPER_FIELDS,
    NSEL_FIELDS,
    YAF_FIELDS,
    Biflow,
    Event,
    h3c_record,
    juniper_record,
    nsel_record,
    template_set,
    v4_packet,
    yaf_record,
)

NOW = 1_700_000_000_000
FUZZ_EXAMPLES = int(os.environ.get("NETPILOT_FUZZ_EXAMPLES", "1500"))


def run(dec: Decoder, *datagrams: bytes, now: int = NOW):  # type: ignore[no-untyped-def]
    return dec.decode([(EXPORTER, d, now) for d in datagrams])


def test_every_truncation_of_real_datagrams_is_counted_not_raised(exports) -> None:  # type: ignore[no-untyped-def]
    for name in ("softflowd-9", "softflowd-10", "pmacctd-9", "pmacctd-5", "pmacctd-sflow"):
        full = exports[name].datagrams
        dec = Decoder()
        dec.decode([(LOOPBACK, d, NOW) for d in full])  # learn templates
        for d in full[:3]:
            for cut in range(0, len(d), 7):
                r = dec.decode([(LOOPBACK, d[:cut], NOW)])
                assert len(r.table()) == r.n  # no exception; result well formed
                assert not r.drops[Reason.DECODE_FAILED], r.errors


def test_truncated_and_lying_lengths() -> None:
    dec = Decoder()
    good = ipfix([ipfix_template(300, V4_FIELDS), ipfix_set(300, v4_record(1))])
    assert run(dec, good[:10]).drops[Reason.TRUNCATED] == 1
    assert run(dec, ipfix([], length=4000)).drops[Reason.TRUNCATED] == 1
    assert run(dec, ipfix([], length=3)).drops[Reason.BAD_LENGTH] == 1
    zero_set = ipfix([struct.pack(">HH", 300, 0) + b"\x00" * 20])
    assert run(dec, zero_set).drops[Reason.BAD_LENGTH] == 1
    long_set = ipfix([struct.pack(">HH", 300, 500) + v4_record(1)])
    assert run(dec, long_set).drops[Reason.TRUNCATED] == 1
    assert run(dec, v5(records=2, count=0)).drops[Reason.BAD_COUNT] == 1
    assert run(dec, v5(records=2, count=31)).drops[Reason.BAD_COUNT] == 1
    short = run(dec, v5(records=2, count=5))  # the records present are decoded, the rest counted
    assert short.n == 2 and short.drops == {Reason.COUNT_MISMATCH: 3}
    assert run(dec, b"\x00\x07" + bytes(30)).drops[Reason.UNKNOWN_VERSION] == 1
    assert run(dec, b"\x00").drops[Reason.TRUNCATED] == 1
    # a variable-length field claiming more bytes than its set holds
    tpl = ipfix_template(301, [(1, 4), (82, 0xFFFF)])
    r = run(dec, ipfix([tpl, ipfix_set(301, struct.pack(">I", 9) + b"\x02ab" + struct.pack(">I", 8) + b"\x20ab")]))
    assert r.drops[Reason.BAD_RECORD] == 1 and r.columns["bytes"].tolist() == [9]


def test_zero_field_and_huge_templates() -> None:
    dec = Decoder()
    r = run(dec, v9([v9_template(300, [])]))
    assert r.drops[Reason.TEMPLATE_EMPTY] == 1
    huge = ipfix_set(2, struct.pack(">HH", 300, 60_000) + field_specs([(1, 4)] * 100))
    r = run(dec, ipfix([huge]))
    assert r.drops[Reason.TEMPLATE_TOO_LARGE] == 1
    zero_len = ipfix_template(302, [(1, 0), (2, 0)])
    assert run(dec, ipfix([zero_len])).drops[Reason.TEMPLATE_EMPTY] == 1
    assert dec.template_count() == 0


def test_template_flapping_decodes_with_the_current_definition() -> None:
    dec = Decoder()
    a = ipfix_template(300, [(1, 4), (2, 4)])
    b = ipfix_template(300, [(2, 4), (1, 8)])
    events = 0
    for i in range(20):
        if i % 2:
            r = run(dec, ipfix([b, ipfix_set(300, struct.pack(">IQ", 3, 300 + i))]))
        else:
            r = run(dec, ipfix([a, ipfix_set(300, struct.pack(">II", 100 + i, 1))]))
        assert r.columns["bytes"].tolist() == [(300 if i % 2 else 100) + i]
        events += len(r.template_events)
    assert events == 20 and dec.template_count() == 1


def test_flood_of_template_ids_is_bounded_and_counted() -> None:
    dec = Decoder(DecoderOptions(max_templates=500, max_templates_per_domain=200))
    evicted = 0
    for start in range(256, 256 + 5000, 100):
        r = run(dec, ipfix([ipfix_template(t, [(1, 4), (2, 4)]) for t in range(start, start + 100)]))
        evicted += r.drops[Reason.TEMPLATE_EVICTED]
    assert dec.template_count() == 200
    assert evicted == 5000 - 200
    # other exporters keep their templates despite the flood
    other = Decoder(DecoderOptions(max_templates=500, max_templates_per_domain=200))
    run(other, ipfix([ipfix_template(300, V4_FIELDS)], domain=9))
    for start in range(256, 256 + 2000, 100):
        run(other, ipfix([ipfix_template(t, [(1, 4)]) for t in range(start, start + 100)], domain=1))
    assert run(other, ipfix([ipfix_set(300, v4_record(1))], domain=9)).n == 1


def test_flood_of_data_without_templates_is_bounded() -> None:
    dec = Decoder(DecoderOptions(pending_sets=64, pending_bytes=1 << 16))
    dropped = 0
    for t in range(256, 256 + 1000):
        dropped += run(dec, ipfix([ipfix_set(t, v4_record(1) * 3)])).drops[Reason.PENDING_OVERFLOW]
    assert len(dec.pending) <= 64 and dec.pending.bytes <= 1 << 16
    assert dropped == 1000 - len(dec.pending)


_SEEDS = [
    ipfix([ipfix_template(300, V4_FIELDS), ipfix_set(300, v4_record(1) + v4_record(2))]),
    ipfix(
        [
            ipfix_template(301, [(1, 4), (100, 4, 9), (82, 0xFFFF), (2, 4)]),
            ipfix_set(301, struct.pack(">II", 1, 2) + b"\x02ab" + struct.pack(">I", 3)),
        ]
    ),
    v9([v9_template(300, [(8, 4), (12, 4), (1, 4), (2, 4), (22, 4), (21, 4)]), ipfix_set(300, bytes(24))]),
    v5(records=3, sampling=5),
    # the layouts of vendors.py: v9 with a variable-length field, NSEL events, YAF biflows,
    # frame sections (new paths for the fuzzer to mutate)
    v9([template_set(0, 3281, H3C_FIELDS), ipfix_set(3281, h3c_record(1, b"dns") + h3c_record(2, b"x" * 260))]),
    v9([template_set(0, 263, NSEL_FIELDS), ipfix_set(263, nsel_record(Event(1, 5, fwd_octets=9, rev_octets=8)))]),
    ipfix(
        [
            template_set(2, 300, YAF_FIELDS),
            ipfix_set(300, yaf_record(Biflow("192.0.2.1", "192.0.2.2", 1, 2, 6, 5, 6, 1, 1, (2, 16), (18, 16)))),
        ]
    ),
    ipfix(
        [
            template_set(2, 500, JUNIPER_FIELDS),
            ipfix_set(500, juniper_record(1, 2, v4_packet("192.0.2.7", "198.51.100.8", 1, 80, 6, 10, vlan=5), 60)),
        ]
    ),
    bytes.fromhex(
        "00000005000000010a000001000000000000000100000000000000010000000100000054"
        "000000010000000100000000000000000000000100000002000000000000000100000001"
        "0000002c000000010000004000000000000000280000000000000000000000000000"
    ),
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    base = bytearray(draw(st.sampled_from(_SEEDS)))
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.integers(0, 2))
        pos = draw(st.integers(0, max(0, len(base) - 1)))
        if op == 0 and base:
            base[pos] = draw(st.integers(0, 255))
        elif op == 1:
            del base[pos : pos + draw(st.integers(1, 16))]
        else:
            base[pos:pos] = draw(st.binary(max_size=16))
    return bytes(base)


_FUZZ_DECODER = Decoder(DecoderOptions(max_templates=256, pending_sets=128, pending_bytes=1 << 18))


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.one_of(mutated(), st.binary(max_size=200)), min_size=1, max_size=8))
def test_fuzz_no_exception_escapes(datagrams: list[bytes]) -> None:
    """One long-lived decoder sees every example (state carries over, as in production).

    NETPILOT_FUZZ_EXAMPLES raises the example count for a longer run on demand.
    """
    r = _FUZZ_DECODER.decode([(EXPORTER, d, NOW) for d in datagrams])
    assert len(r.table()) == r.n
    assert not r.drops[Reason.DECODE_FAILED], r.errors  # the catch-all hides no bug from the fuzzer
    assert _FUZZ_DECODER.template_count() <= 256
    assert len(_FUZZ_DECODER.pending) <= 128 and _FUZZ_DECODER.pending.bytes <= 1 << 18


def test_memory_stays_bounded_under_garbage() -> None:
    rng = random.Random(7)
    dec = Decoder(DecoderOptions(max_templates=256, pending_sets=128, pending_bytes=1 << 18))

    def garbage(k: int) -> list[tuple[bytes, bytes, int]]:
        out = []
        for _ in range(k):
            d = bytearray(rng.choice(_SEEDS))
            for _ in range(rng.randint(0, 4)):
                d[rng.randrange(len(d))] = rng.randrange(256)
            t = rng.randint(256, 65535)  # template ids flood too
            d += ipfix([ipfix_template(t, [(1, 4), (2, 4)]), ipfix_set(rng.randint(256, 65535), bytes(64))])
            out.append((EXPORTER, bytes(d), NOW))
        return out

    for _ in range(5):  # warm up caches to their bounds
        dec.decode(garbage(400))
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for _ in range(20):
            dec.decode(garbage(400))
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 8 << 20, f"grew {(after - before) >> 10} KiB"
    assert dec.template_count() <= 256 and dec.pending.bytes <= 1 << 18
