"""Template scope (RFC 7011 §8): per Transport Session, or per exporter address on request."""

from __future__ import annotations

import struct

from producers.collector.decode.decoder import Decoder, DecoderOptions
from producers.collector.decode.errors import Reason
from tests.producers.collector.decode.builders import (
    EXPORTER,
    V4_FIELDS,
    ipfix,
    ipfix_options_template,
    ipfix_set,
    ipfix_template,
    v4_record,
    v9,
    v9_template,
)

NOW = 1_700_000_000_000
SHORT = [(1, 4), (2, 4)]  # octets, packets


def test_two_sessions_of_one_address_keep_their_own_templates() -> None:
    """Two export processes behind one address (line cards, cluster members) reuse template
    ids with different layouts: each session's data decodes with its own template."""
    dec = Decoder()
    r = dec.decode(
        [
            (EXPORTER, ipfix([ipfix_template(300, V4_FIELDS)]), NOW, 40001),
            (EXPORTER, ipfix([ipfix_template(300, SHORT)]), NOW, 40002),
            (EXPORTER, ipfix([ipfix_set(300, v4_record(1))]), NOW, 40001),
            (EXPORTER, ipfix([ipfix_set(300, struct.pack(">II", 77, 7))]), NOW, 40002),
        ]
    )
    assert not r.drops and sorted(r.columns["bytes"].tolist()) == [77, 1001]
    assert dec.template_count() == 2
    assert sorted(e.source_port for e in r.template_events) == [40001, 40002]
    # a third session (the exporter restarted on a new port) has no template yet: held
    later = dec.decode([(EXPORTER, ipfix([ipfix_set(300, v4_record(2))]), NOW, 40003)])
    assert later.n == 0 and len(dec.pending) == 1


def test_exporter_scope_follows_an_exporter_that_changes_source_port() -> None:
    dec = Decoder(DecoderOptions(template_scope="exporter"))
    r = dec.decode(
        [
            (EXPORTER, v9([v9_template(300, V4_FIELDS)]), NOW, 40001),
            (EXPORTER, v9([ipfix_set(300, v4_record(1))]), NOW, 40002),
            (EXPORTER, v9([ipfix_set(300, v4_record(2))]), NOW, 40003),
        ]
    )
    assert r.n == 2 and not r.drops and len(dec.pending) == 0
    assert [e.source_port for e in r.template_events] == [0]  # persisted by address


def test_options_data_is_per_session_too() -> None:
    """A sampling rate learned from one session's options data is not another's."""
    opts = ipfix_options_template(500, [(149, 4)], [(34, 4)])
    dec = Decoder()
    r = dec.decode(
        [
            (EXPORTER, ipfix([opts, ipfix_set(500, struct.pack(">II", 1, 100))]), NOW, 40001),
            (EXPORTER, ipfix([ipfix_template(300, SHORT), ipfix_set(300, struct.pack(">II", 1, 1))]), NOW, 40001),
            (EXPORTER, ipfix([ipfix_template(300, SHORT), ipfix_set(300, struct.pack(">II", 2, 1))]), NOW, 40002),
        ]
    )
    rates = dict(zip(r.columns["bytes"].tolist(), r.columns["sampling_rate"].tolist()))
    assert rates == {1: 100, 2: 1} and r.sampling_unknown == 1


def test_persisted_templates_reload_into_their_session() -> None:
    first = Decoder()
    ev = first.decode([(EXPORTER, ipfix([ipfix_template(300, V4_FIELDS)]), NOW, 40001)]).template_events[0]
    assert ev.source_port == 40001
    second = Decoder()
    second.load_template(ev.exporter, ev.version, ev.domain, ev.kind, ev.definition, ev.source_port)
    same = second.decode([(EXPORTER, ipfix([ipfix_set(300, v4_record(3))]), NOW, 40001)])
    other = second.decode([(EXPORTER, ipfix([ipfix_set(300, v4_record(4))]), NOW, 40009)])
    assert same.n == 1 and other.n == 0 and len(second.pending) == 1
    by_address = Decoder(DecoderOptions(template_scope="exporter"))  # any port of the address
    by_address.load_template(ev.exporter, ev.version, ev.domain, ev.kind, ev.definition, ev.source_port)
    assert by_address.decode([(EXPORTER, ipfix([ipfix_set(300, v4_record(5))]), NOW, 40009)]).n == 1


def test_port_hopping_cannot_escape_the_per_domain_cap() -> None:
    """The cap counts templates per address and domain, whatever the port: a flood from
    many source ports evicts that exporter's own (oldest sessions') templates."""
    dec = Decoder(DecoderOptions(max_templates=500, max_templates_per_domain=50))
    other = (b"\x00" * 10 + b"\xff\xff" + bytes([192, 0, 2, 99]), ipfix([ipfix_template(300, SHORT)]), NOW, 1)
    dec.decode([other])
    evicted = 0
    for port in range(100, 300):
        r = dec.decode([(EXPORTER, ipfix([ipfix_template(300, SHORT)]), NOW, port)])
        evicted += r.drops[Reason.TEMPLATE_EVICTED]
    assert evicted == 200 - 50 and dec.template_count() == 50 + 1
    assert dec.decode([(other[0], ipfix([ipfix_set(300, struct.pack(">II", 5, 1))]), NOW, 1)]).n == 1
