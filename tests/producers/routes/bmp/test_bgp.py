"""UPDATEs and OPENs inside BMP, decoded through ExaBGP: FRR's bytes and crafted ones."""

from __future__ import annotations

import struct

import pytest

from producers.routes.bmp import framing as f
from producers.routes.bmp.bgp import PathAttrs, PeerCodec
from tests.producers.routes.bmp import bmpwriter as w
from tests.producers.routes.bmp.conftest import PEER_A


def _codec(up: bytes, strip: bool = True) -> PeerCodec:
    msg = f.BmpStream().feed(up)[0]
    assert isinstance(msg, f.BmpMessage)
    body = f.parse_peer_up(msg.body)
    return PeerCodec(body.sent_open, body.received_open, strip)


def test_frr_updates_decode_to_its_routes(frr_stream: bytes) -> None:
    msgs = [m for m in f.BmpStream().feed(frr_stream) if isinstance(m, f.BmpMessage)]
    up = f.parse_peer_up(msgs[1].body)
    codecs = {strip: PeerCodec(up.sent_open, up.received_open, strip) for strip in (True, False)}
    assert (codecs[True].local_as, codecs[True].peer_as, codecs[True].families) == (64496, 64510, {4, 6})
    announced: dict[str, PathAttrs] = {}
    withdrawn, eors = [], []
    for m in msgs:
        if m.type != f.ROUTE_MONITORING or m.peer.address != PEER_A or m.peer.post_policy:  # type: ignore[union-attr]
            continue
        ev = codecs[True].update(m.body)
        announced.update({p: a for p, _, a in ev.announced})
        withdrawn += [p for p, _ in ev.withdrawn]
        eors += [ev.eor] if ev.eor else []
        raw = codecs[False].update(m.body)
        assert [a.as_path for _, _, a in raw.announced] == [(64496, 64510)] * len(raw.announced)  # FRR 8.4's prepend
    v4 = PathAttrs("198.51.100.2", (64510,), "igp", 100, 0, ())
    v6 = PathAttrs("2001:db8:ffff::2", (64510,), "igp", 100, 0, ())
    assert announced == {
        "198.18.10.0/24": v4,
        "198.18.11.0/24": v4,
        "203.0.113.0/25": v4,
        "2001:db8:10::/48": v6,
        "2001:db8:11::/48": v6,
    }
    assert withdrawn == ["198.18.11.0/24"] and eors == [4, 6]


def test_attributes_communities_and_two_byte_paths() -> None:
    codec = _codec(w.peer_up("198.51.100.1", 64500))
    a = w.attrs((64500, 64501), origin=1, next_hop="198.51.100.1", local_pref=200, med=5, communities=[(64500, 1)])
    ev = codec.update(w.update(["203.0.113.0/24", "198.18.0.0/16"], ["198.18.1.0/24"], a))
    attrs = PathAttrs("198.51.100.1", (64500, 64501), "egp", 200, 5, ("64500:1",))
    assert ev.announced == [("203.0.113.0/24", 0, attrs), ("198.18.0.0/16", 0, attrs)]
    assert ev.withdrawn == [("198.18.1.0/24", 0)]
    assert ev.announced[0][2] is ev.announced[1][2]  # one object per attribute set
    # BMP's A flag: this message's AS_PATH is in 2-byte ASNs whatever the session negotiated
    two = codec.update(
        w.update(["203.0.113.0/24"], [], w.attrs((64500, 64502), as2=True, next_hop="198.51.100.1")), True
    )
    assert two.announced[0][2].as_path == (64500, 64502)


def test_ipv6_and_end_of_rib() -> None:
    codec = _codec(w.peer_up("2001:db8::1", 64500))
    ev = codec.update(w.update(["2001:db8:1::/48"], ["2001:db8:2::/48"], w.attrs((64500,)), next_hop6="2001:db8::1"))
    assert ev.announced == [("2001:db8:1::/48", 0, PathAttrs("2001:db8::1", (64500,), "igp", 100, 0, ()))]
    assert ev.withdrawn == [("2001:db8:2::/48", 0)]
    assert codec.update(w.eor(4)).eor == 4 and codec.update(w.eor(6)).eor == 6


def test_add_path_ids_come_through() -> None:
    codec = _codec(w.peer_up("198.51.100.2", 64502, addpath=3))
    ev = codec.update(
        w.update(["203.0.113.0/24", "203.0.113.0/24"], [], w.attrs((64502,), next_hop="198.51.100.2"), path_ids=[7, 3])
    )
    assert [(p, pid) for p, pid, _ in ev.announced] == [("203.0.113.0/24", 7), ("203.0.113.0/24", 3)]


def test_malformed_updates() -> None:
    codec = _codec(w.peer_up("198.51.100.1", 64500))
    a = w.attrs(next_hop="198.51.100.1")
    for body, why in (
        (struct.pack("!HH", 0, len(a)) + a + bytes([33, 1, 2, 3, 4, 5]), "invalid mask 33"),
        (struct.pack("!HH", 0, len(a)) + a + bytes([24, 1, 2]), "could not decode nlri"),
        (struct.pack("!HH", 0, len(a) + 5) + a, "total path attribute length"),
    ):
        with pytest.raises(f.MessageError) as exc:
            codec.update(w.bgp(2, body))
        assert exc.value.reason == "bad-update" and why in exc.value.detail
    # RFC 7606: a broken attribute, or an undefined ORIGIN, withdraws the prefixes instead
    for bad in (a[:-2], w.attrs(origin=7, next_hop="198.51.100.1")):
        ev = codec.update(w.update(["203.0.113.0/24"], [], bad))
        assert ev.treat_as_withdraw and ev.withdrawn == [("203.0.113.0/24", 0)] and not ev.announced
    with pytest.raises(f.MessageError):
        _codec(
            w.bmp(
                w.PEER_UP,
                w.peer_header("198.51.100.1", 64500) + bytes(20) + w.open_msg(1, "198.51.100.1")[:30] + bytes(30),
            )
        )
