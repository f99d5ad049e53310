"""Decoder unit tests on hand-built vectors: fields, sampling, templates, held data."""

from __future__ import annotations

import struct

import numpy as np

from netpilot.wire.flows import FlowFlags, FlowType, addr_to_str, str_to_addr
from producers.collector.decode.decoder import Decoder, DecoderOptions
from producers.collector.decode.errors import Reason
from tests.producers.collector.decode.builders import (
    EXPORT_TIME,
    EXPORTER,
    V4_FIELDS,
    ipfix,
    ipfix_options_template,
    ipfix_set,
    ipfix_template,
    v4_record,
    v5,
    v9,
    v9_options_template,
    v9_template,
)

NOW = EXPORT_TIME * 1000


def run(dec: Decoder, *datagrams: bytes, now: int = NOW):  # type: ignore[no-untyped-def]
    return dec.decode([(EXPORTER, d, now) for d in datagrams])


def test_ipfix_template_then_data_decodes_every_column() -> None:
    dec = Decoder()
    r = run(dec, ipfix([ipfix_template(300, V4_FIELDS), ipfix_set(300, v4_record(1) + v4_record(2))]))
    assert r.n == 2 and not r.drops
    c = r.columns
    assert addr_to_str(bytes(c["src_addr"][0])) == "192.0.2.1"
    assert addr_to_str(bytes(c["dst_addr"][1])) == "198.51.100.2"
    assert c["src_port"].tolist() == [1001, 1002] and c["dst_port"].tolist() == [443, 443]
    assert c["bytes"].tolist() == [1001, 1002] and c["packets"].tolist() == [10, 10]
    assert c["time_start"].tolist() == [NOW - 5000] * 2 and c["time_end"].tolist() == [NOW - 1000] * 2
    assert (c["flow_type"] == FlowType.IPFIX).all() and (c["observation_domain"] == 1).all()
    assert (c["flags"] == FlowFlags.SAMPLING_UNKNOWN).all() and r.sampling_unknown == 2
    assert r.flows[(EXPORTER, "ipfix")] == 2 and r.datagrams[(EXPORTER, "ipfix")] == 1
    assert len(r.template_events) == 1 and r.template_events[0].template_id == 300
    assert len(r.table()) == 2


def test_templates_are_per_exporter_and_domain() -> None:
    dec = Decoder()
    run(dec, ipfix([ipfix_template(300, V4_FIELDS)], domain=1))
    r = run(dec, ipfix([ipfix_set(300, v4_record(1))], domain=2))
    assert r.n == 0  # domain 2 has no template 300: held, not mis-decoded
    other = dec.decode([(str_to_addr("192.0.2.99"), ipfix([ipfix_set(300, v4_record(1))], domain=1), NOW)])
    assert other.n == 0
    assert run(dec, ipfix([ipfix_set(300, v4_record(1))], domain=1)).n == 1


def test_data_before_template_is_held_then_decoded() -> None:
    dec = Decoder()
    r1 = run(dec, ipfix([ipfix_set(300, v4_record(1))]))
    assert r1.n == 0 and not r1.drops and len(dec.pending) == 1
    r2 = run(dec, ipfix([ipfix_template(300, V4_FIELDS)]), now=NOW + 2000)
    assert r2.n == 1 and r2.columns["bytes"].tolist() == [1001]
    assert len(dec.pending) == 0


def test_held_data_expires_and_is_counted() -> None:
    dec = Decoder(DecoderOptions(pending_age_ms=1000))
    run(dec, ipfix([ipfix_set(300, v4_record(1))]))
    r = run(dec, ipfix([ipfix_set(301, b"")]), now=NOW + 5000)
    assert r.drops[Reason.NO_TEMPLATE] == 1 and len(dec.pending) == 0


def test_ipfix_withdrawal_and_redefinition() -> None:
    dec = Decoder()
    run(dec, ipfix([ipfix_template(300, V4_FIELDS)]))
    r = run(dec, ipfix([ipfix_set(2, struct.pack(">HH", 300, 0))]))
    assert [e.definition for e in r.template_events] == [None]
    assert dec.template_count() == 0
    # redefined with only octets + packets (4 bytes each)
    r = run(dec, ipfix([ipfix_template(300, [(1, 4), (2, 4)]), ipfix_set(300, struct.pack(">II", 77, 7))]))
    assert r.columns["bytes"].tolist() == [77] and r.columns["packets"].tolist() == [7]


def test_enterprise_and_variable_length_fields_are_skipped_cleanly() -> None:
    fields = [(1, 4), (100, 4, 29305), (82, 0xFFFF), (2, 4), (7, 2)]
    rec = struct.pack(">II", 500, 0xDEADBEEF) + bytes([3]) + b"eth" + struct.pack(">IH", 5, 8080)
    rec2 = struct.pack(">II", 600, 1) + bytes([255]) + struct.pack(">H", 300) + b"x" * 300 + struct.pack(">IH", 6, 9090)
    r = run(Decoder(), ipfix([ipfix_template(400, fields), ipfix_set(400, rec + rec2)]))
    assert r.columns["bytes"].tolist() == [500, 600]
    assert r.columns["packets"].tolist() == [5, 6]
    assert r.columns["src_port"].tolist() == [8080, 9090]


def test_reduced_size_and_odd_length_counters() -> None:
    fields = [(1, 3), (2, 2), (8, 4)]
    rec = b"\x01\x00\x01" + struct.pack(">H", 3) + bytes([192, 0, 2, 5])
    r = run(Decoder(), ipfix([ipfix_template(300, fields), ipfix_set(300, rec + b"\x00\x00")]))  # + padding
    assert r.columns["bytes"].tolist() == [65537] and r.columns["packets"].tolist() == [3]


def test_v9_uptime_timestamps_and_sampler_options() -> None:
    dec = Decoder()
    tpl = v9_template(260, [(8, 4), (12, 4), (1, 4), (2, 4), (22, 4), (21, 4), (48, 1)])
    opts = v9_options_template(261, [(1, 4)], [(48, 1), (49, 1), (50, 4)])
    rec = struct.pack(">4s4sIIIIB", bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2]), 100, 2, 90_000, 99_000, 5)
    r = run(
        dec, v9([tpl, opts, ipfix_set(261, struct.pack(">IBBI", 0, 5, 2, 512)), ipfix_set(260, rec)], uptime=100_000)
    )
    assert r.columns["time_start"].tolist() == [NOW - 10_000]
    assert r.columns["time_end"].tolist() == [NOW - 1_000]
    assert r.columns["sampling_rate"].tolist() == [512]
    assert r.columns["bytes_scaled"].tolist() == [51_200] and r.columns["packets_scaled"].tolist() == [1024]
    assert r.sampling_unknown == 0 and not r.columns["flags"].any()


def test_v9_flowset_with_two_options_templates_and_padding() -> None:
    dec = Decoder()
    two = v9_options_template(270, [(1, 4)], [(34, 4)])[4:] + v9_options_template(271, [(2, 4)], [(48, 1), (50, 4)])[4:]
    flowset = struct.pack(">HH", 1, 4 + len(two) + 2) + two + b"\x00\x00"
    r = run(dec, v9([flowset]))
    assert not r.drops and sorted(e.template_id for e in r.template_events) == [270, 271]


def test_ipfix_rates_in_the_data_set_and_domain_wide_options() -> None:
    dec = Decoder()
    # domain-wide: options with samplingPacketInterval/Space (305/306) -> 1 in (1+99)
    opts = ipfix_options_template(500, [(149, 4)], [(305, 4), (306, 4)])
    r = run(
        dec,
        ipfix(
            [
                opts,
                ipfix_set(500, struct.pack(">III", 1, 1, 99)),
                ipfix_template(300, V4_FIELDS),
                ipfix_set(300, v4_record(1)),
            ]
        ),
    )
    assert r.columns["sampling_rate"].tolist() == [100]
    # per record: samplingInterval (34) in the data wins over the domain rate
    r = run(
        dec,
        ipfix(
            [
                ipfix_template(301, [(1, 4), (2, 4), (34, 4)]),
                ipfix_set(301, struct.pack(">III", 10, 1, 0) + struct.pack(">III", 10, 1, 7)),
            ]
        ),
    )
    assert r.columns["sampling_rate"].tolist() == [100, 7]


def test_default_rate_per_exporter_is_applied_and_flagged() -> None:
    dec = Decoder(DecoderOptions(default_sampling_rate=1, sampling_rate_by_exporter={EXPORTER: 1000}))
    r = run(dec, v5(records=2, sampling=0))
    assert r.columns["sampling_rate"].tolist() == [1000, 1000]
    assert (r.columns["flags"] == FlowFlags.SAMPLING_UNKNOWN).all()
    r = run(dec, v5(records=1, sampling=(1 << 14) | 64))  # mode bits + interval 64
    assert r.columns["sampling_rate"].tolist() == [64] and r.sampling_unknown == 0


def test_v5_fields() -> None:
    r = run(Decoder(), v5(records=2, sampling=10))
    c = r.columns
    assert c["bytes"].tolist() == [1500, 1501] and c["packets"].tolist() == [10, 11]
    assert c["bytes_scaled"].tolist() == [15000, 15010]
    assert c["src_as"].tolist() == [64500] * 2 and c["dst_as"].tolist() == [64501] * 2
    assert c["time_start"].tolist() == [NOW - 10_000] * 2 and c["time_end"].tolist() == [NOW - 1000] * 2
    assert c["tcp_flags"].tolist() == [0x12] * 2 and c["in_if"].tolist() == [1, 1]
    assert not c["next_hop"].any()


def test_template_reload_decodes_at_once() -> None:
    first = Decoder()
    r = run(first, ipfix([ipfix_template(300, V4_FIELDS)]))
    ev = r.template_events[0]
    second = Decoder()
    second.load_template(ev.exporter, ev.version, ev.domain, ev.kind, ev.definition)
    r2 = run(second, ipfix([ipfix_set(300, v4_record(3))]))
    assert r2.n == 1 and r2.columns["bytes"].tolist() == [1003]


def test_many_datagrams_of_one_template_decode_in_one_group() -> None:
    dec = Decoder()
    run(dec, ipfix([ipfix_template(300, V4_FIELDS)]))
    dgs = [ipfix([ipfix_set(300, b"".join(v4_record(i * 10 + k) for k in range(10)))]) for i in range(50)]
    r = run(dec, *dgs)
    assert r.n == 500
    assert np.array_equal(np.sort(r.columns["bytes"]), np.arange(500) + 1000)


def test_a_resent_template_is_compiled_once_and_a_changed_one_again() -> None:
    dec = Decoder()
    key = (EXPORTER, 0, 10, 1, 300)  # no source port given: scoped by address
    first = run(dec, ipfix([ipfix_template(300, V4_FIELDS)]))
    compiled = dec.store.get(key)
    assert compiled is not None and len(first.template_events) == 1
    again = run(dec, ipfix([ipfix_template(300, V4_FIELDS), ipfix_set(300, v4_record(1))]))
    assert dec.store.get(key) is compiled and again.template_events == [] and again.n == 1
    changed = run(dec, ipfix([ipfix_template(300, [(1, 4), (2, 4)]), ipfix_set(300, struct.pack(">II", 77, 7))]))
    assert dec.store.get(key) is not compiled and len(changed.template_events) == 1
    assert changed.columns["bytes"].tolist() == [77]
