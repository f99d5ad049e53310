"""Counting honestly: what is decoded, what is dropped and why, and where (``--explain``)."""

from __future__ import annotations

import struct
from pathlib import Path

from producers.collector.decode.decoder import Decoder, DecoderOptions
from producers.collector.decode.errors import Reason
from tests.producers.collector.decode.builders import (
    EXPORTER,
    V4_FIELDS,
    ipfix,
    ipfix_set,
    ipfix_template,
    v4_record,
    v9,
    v9_template,
)
from tests.producers.collector.decode.builders import v5 as v5_datagram
from tests.producers.collector.traffic import tshark_fields, write_datagram_pcap

NOW = 1_700_000_000_000


def run(dec: Decoder, *datagrams: bytes):  # type: ignore[no-untyped-def]
    return dec.decode([(EXPORTER, d, NOW) for d in datagrams])


def test_v5_header_claiming_more_records_decodes_those_present_like_tshark(tmp_path: Path) -> None:
    datagrams = [v5_datagram(records=20, count=30), v5_datagram(records=3) + bytes(10), v5_datagram(2, count=1)]
    r = run(Decoder(DecoderOptions(explain=True)), *datagrams)
    pcap = tmp_path / "v5.pcap"
    write_datagram_pcap(pcap, datagrams, 2055)
    shown = [int(v) for row in tshark_fields(pcap, 2055, "cflow", ["cflow.octets"]) for v in row[0].split(",")]
    assert r.columns["bytes"].tolist() == shown and r.n == 20 + 3 + 1
    # 10 records claimed and missing; 1 record after the counted one (not padding): counted
    assert r.drops == {Reason.COUNT_MISMATCH: 10 + 1}
    assert [(e.datagram, e.offset, e.reason, e.count) for e in r.explained] == [
        (0, 24 + 20 * 48, Reason.COUNT_MISMATCH, 10),
        (2, 24 + 48, Reason.COUNT_MISMATCH, 1),
    ]
    assert r.datagrams[(EXPORTER, "netflow5")] == 3


def test_trailing_zero_padding_is_not_a_drop_but_garbage_is() -> None:
    dec = Decoder()
    tpl, data = ipfix_template(300, V4_FIELDS), ipfix_set(300, v4_record(1))
    padded_v9 = v9([v9_template(300, V4_FIELDS), data]) + bytes(8)  # exporters pad datagrams
    r = run(dec, padded_v9)
    assert r.n == 1 and not r.drops
    body = tpl + data + bytes(6)  # IPFIX: padding inside the message length
    r = run(dec, ipfix([body]))
    assert r.n == 1 and not r.drops
    r = run(dec, v9([data]) + b"\x00\x00\x07")  # not zeros: 3 bytes that are no flowset
    assert r.n == 1 and r.drops == {Reason.TRUNCATED: 1}
    r = run(dec, v9([data]) + b"\x01\x00\x00\x00")  # a flowset header of length 0 is still bad
    assert r.drops == {Reason.BAD_LENGTH: 1}


def test_data_still_waiting_for_its_template_is_counted_at_the_end() -> None:
    dec = Decoder(DecoderOptions(explain=True, pending_age_ms=60_000))
    r = run(dec, ipfix([ipfix_set(300, v4_record(1))]), ipfix([ipfix_set(301, v4_record(2))]))
    assert r.n == 0 and not r.drops and len(dec.pending) == 2  # still waiting: no verdict yet
    end = dec.flush()
    assert end.drops == {Reason.NO_TEMPLATE: 2} and len(dec.pending) == 0
    assert [(e.datagram, e.reason) for e in end.explained] == [(0, Reason.NO_TEMPLATE), (1, Reason.NO_TEMPLATE)]
    assert "capture ended" in end.explained[0].message
    assert dec.flush().drops == {}  # nothing twice


def test_explanations_carry_the_offset_of_the_bad_part() -> None:
    dec = Decoder(DecoderOptions(explain=True))
    good = ipfix([ipfix_template(300, V4_FIELDS)])
    long_set = ipfix([ipfix_set(300, v4_record(1)), struct.pack(">HH", 300, 500) + v4_record(2)])
    r = run(dec, good, long_set, b"\x00\x07" + bytes(30))
    assert [(e.datagram, e.offset, e.reason) for e in r.explained] == [
        (1, 16 + 4 + 45, Reason.TRUNCATED),  # the second set's header: after the header and a 45-byte record
        (2, 0, Reason.UNKNOWN_VERSION),
    ]
    assert r.n == 1  # the good set of datagram 1 is kept
    assert dec.datagrams_seen == 3
