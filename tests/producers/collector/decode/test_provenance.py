"""Provenance columns (``netpilot decode``): datagram, template, sequence, capture order."""

from __future__ import annotations

import struct

import numpy as np

from producers.collector.decode.compiler import REVERSE_PEN
from producers.collector.decode.decoder import Decoder, DecoderOptions
from producers.collector.decode.result import PROVENANCE_FIELDS
from tests.producers.collector.decode.builders import EXPORTER, ipfix, ipfix_set, ipfix_template, v5, v9, v9_template

NOW = 1_700_000_000_000
A = [(1, 4), (2, 4)]  # octets, packets
B = [(2, 4), (1, 4)]  # packets, octets
BI = [(1, 4), (2, 4), (1, 4, REVERSE_PEN), (2, 4, REVERSE_PEN)]


def rec_a(octets: int) -> bytes:
    return struct.pack(">II", octets, 1)


def rec_b(octets: int) -> bytes:
    return struct.pack(">II", 1, octets)


def with_sequence(datagram: bytes, seq: int, offset: int) -> bytes:
    return datagram[:offset] + struct.pack(">I", seq) + datagram[offset + 4 :]


def test_flows_sort_into_capture_order_with_their_provenance() -> None:
    dec = Decoder(DecoderOptions(provenance=True))
    datagrams = [
        # templates interleaved within one datagram: A, B, A
        with_sequence(
            ipfix(
                [
                    ipfix_template(300, A),
                    ipfix_template(301, B),
                    ipfix_set(300, rec_a(1) + rec_a(2)),
                    ipfix_set(301, rec_b(3)),
                    ipfix_set(300, rec_a(4)),
                ]
            ),
            7,
            8,
        ),
        with_sequence(v9([v9_template(400, B), ipfix_set(400, rec_b(5))]), 8, 12),
        v5(records=2),  # bytes 1500, 1501
        with_sequence(ipfix([ipfix_set(302, rec_a(6))]), 9, 8),  # before its template: held
        ipfix([ipfix_template(302, A), ipfix_template(303, BI), ipfix_set(303, struct.pack(">IIII", 7, 1, 8, 1))]),
    ]
    r = dec.decode([(EXPORTER, d, NOW) for d in datagrams])
    assert set(PROVENANCE_FIELDS) <= set(r.columns) and not r.drops
    order = np.argsort(r.columns["order"], kind="stable")
    c = {k: v[order] for k, v in r.columns.items()}
    assert c["bytes"].tolist() == [1, 2, 3, 4, 5, 1500, 1501, 6, 7, 8]
    assert c["datagram"].tolist() == [0, 0, 0, 0, 1, 2, 2, 3, 4, 4]
    assert c["template_id"].tolist() == [300, 300, 301, 300, 400, 0, 0, 302, 303, 303]
    assert c["sequence"].tolist() == [7, 7, 7, 7, 8, 0, 0, 9, 0, 0]
    assert len(np.unique(r.columns["order"])) == r.n
    # the decoder counts datagrams across passes
    again = dec.decode([(EXPORTER, v5(records=1), NOW)])
    assert again.columns["datagram"].tolist() == [5]
    # provenance stays out of the flows/1 table the collector publishes
    assert "order" not in r.table().schema.names


def test_no_provenance_columns_unless_asked() -> None:
    r = Decoder().decode([(EXPORTER, v5(records=1), NOW)])
    assert not set(PROVENANCE_FIELDS) & set(r.columns)
