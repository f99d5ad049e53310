"""BMP framing on FRR's own bytes and on broken ones."""

from __future__ import annotations

import struct

import pytest

from producers.routes.bmp import framing as f
from tests.producers.routes.bmp import bmpwriter as w
from tests.producers.routes.bmp.conftest import PEER_A, PEER_B, ROUTER_ADDRESS


def _types(msgs: list) -> list[str]:
    return [f.TYPE_NAMES[m.type] for m in msgs]


def test_frr_stream_splits_into_its_messages_whatever_the_reads(frr_stream: bytes) -> None:
    whole = f.BmpStream().feed(frr_stream)
    types = _types(whole)
    assert types[:3] == ["initiation", "peer-up", "peer-up"]
    assert types[-1] == "peer-down"
    assert types.count("route-monitoring") == len(types) - 4
    for size in (1, 7, 100, 1000):  # TCP hands over any split; the messages must not change
        stream = f.BmpStream()
        parts = []
        for i in range(0, len(frr_stream), size):
            parts += stream.feed(frr_stream[i : i + size])
        assert [(m.type, m.peer, bytes(m.body)) for m in parts] == [(m.type, m.peer, bytes(m.body)) for m in whole]
        assert stream.buffered == 0


def test_frr_headers_and_tlvs(frr_stream: bytes) -> None:
    msgs = f.BmpStream().feed(frr_stream)
    assert f.parse_tlvs(msgs[0].body) == {f.TLV_SYS_DESCR: "FRRouting 8.4.4", f.TLV_SYS_NAME: "bmp-r1"}
    up_a, up_b = msgs[1], msgs[2]
    assert (up_a.peer.address, up_a.peer.asn, up_b.peer.address, up_b.peer.asn) == (PEER_A, 64510, PEER_B, 64511)
    body = f.parse_peer_up(up_a.body)
    assert body.local_address == ROUTER_ADDRESS
    assert body.sent_open[18] == 1 and body.received_open[18] == 1  # two BGP OPENs
    post = [m for m in msgs if m.peer is not None and m.peer.post_policy]
    assert len(post) == 4  # FRR's extra post-policy End-of-RIBs (2 peers x 2 families)
    assert f.parse_peer_down(msgs[-1].body) == "remote-notification"


def test_bad_version_and_lengths_break_the_stream() -> None:
    stream = f.BmpStream()
    first, broken = stream.feed(w.initiation("r1") + w.bmp(w.INITIATION, b"", version=1) + w.initiation("r2"))
    assert isinstance(first, f.BmpMessage)  # what came before the break is still good
    assert isinstance(broken, f.FramingError) and broken.reason == "bad-version"
    assert stream.feed(w.initiation("r3")) == [broken]  # and nothing after it
    (short,) = f.BmpStream().feed(struct.pack("!BIB", 3, 5, 4))
    assert isinstance(short, f.FramingError) and short.reason == "bad-length"
    (long,) = f.BmpStream(max_message=4096).feed(struct.pack("!BIB", 3, 5000, 0))
    assert isinstance(long, f.FramingError) and long.reason == "bad-length"  # from the header alone


def test_a_short_peer_message_is_an_error_in_place_and_the_next_one_decodes() -> None:
    msgs = f.BmpStream().feed(w.bmp(w.PEER_UP, b"\x00" * 10) + w.initiation("r1"))
    assert isinstance(msgs[0], f.MessageError) and msgs[0].reason == "short-message"
    assert isinstance(msgs[1], f.BmpMessage) and f.parse_tlvs(msgs[1].body)[f.TLV_SYS_NAME] == "r1"


def test_bad_bodies_are_message_errors() -> None:
    with pytest.raises(f.MessageError) as exc:
        f.parse_tlvs(memoryview(struct.pack("!HH", 2, 50) + b"short"))
    assert exc.value.reason == "bad-tlv"
    with pytest.raises(f.MessageError) as exc:
        f.bgp_pdu(b"\x00" * 16 + struct.pack("!HB", 23, 2) + b"\x00" * 4)
    assert exc.value.reason == "bad-bgp-header"
    with pytest.raises(f.MessageError) as exc:
        f.bgp_pdu(w.bgp(2, b"\x00\x00\x00\x00"), expect_type=1)
    assert exc.value.reason == "bad-bgp-header"
    overrun = b"\xff" * 16 + struct.pack("!HB", 500, 1) + bytes(40)  # an OPEN claiming 500 bytes
    up = f.BmpStream().feed(w.bmp(w.PEER_UP, w.peer_header("198.51.100.1", 64500) + bytes(20) + overrun))[0]
    with pytest.raises(f.MessageError) as exc:
        f.parse_peer_up(up.body)  # type: ignore[union-attr]
    assert exc.value.reason == "bad-open"


def test_peer_header_flags_and_ipv6_peers() -> None:
    msg = f.BmpStream().feed(w.route_monitoring("2001:db8::1", 64500, w.eor(), post_policy=True, as2=True))[0]
    assert isinstance(msg, f.BmpMessage) and msg.peer is not None
    assert (msg.peer.address, msg.peer.post_policy, msg.peer.as2, msg.peer.adj_rib_out) == (
        "2001:db8::1",
        True,
        True,
        False,
    )
