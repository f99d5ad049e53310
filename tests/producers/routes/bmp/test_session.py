"""A router's BMP session, replayed from FRR's recorded stream and from crafted bad input."""

from __future__ import annotations

import pytest

from netpilot.wire.links import LinkInventory
from netpilot.wire.routes import Route
from producers.routes.bmp import framing as f
from producers.routes.bmp.linkmap import LinkMap
from producers.routes.bmp.rib import RibState
from producers.routes.bmp.session import BmpSession
from producers.routes.mrt import LinkRef
from tests.producers.routes.bmp import bmpwriter as w
from tests.producers.routes.bmp.conftest import PEER_A, PEER_B


def _link(link_id: str, router: str, *next_hops: str, exporter: str | None = None) -> LinkInventory:
    return LinkInventory(
        pop="lab1", link_id=link_id, router=router, capacity_bps=1e10, next_hops=next_hops, exporter=exporter
    )


LAB = LinkMap.build([_link("transit-a", "bmp-r1", PEER_A), _link("transit-b", "bmp-r1", PEER_B)])


def _replay(data: bytes, state: RibState, linkmap: LinkMap = LAB, chunk: int = 97, **kw: object) -> BmpSession:
    session = BmpSession("127.0.0.1", state, linkmap, **kw)  # type: ignore[arg-type]
    for i in range(0, len(data), chunk):
        session.feed(data[i : i + chunk], now=1.0)
    return session


def _published(state: RibState) -> dict[str, Route]:
    out = {}
    for c in state.changes():
        assert c.value is not None
        out[c.key] = Route.decode(c.value)
    return out


def test_frr_stream_gives_every_route_of_every_mapped_peer(frr_stream: bytes) -> None:
    cut = frr_stream.index(bytes.fromhex("030000004b00"))  # up to peer-a's withdrawal
    state = RibState()
    session = _replay(frr_stream[:cut], state)
    assert session.router == "bmp-r1" and session.sys_descr == "FRRouting 8.4.4"  # sysName = inventory router
    assert [e.how for e in state.tick(2.0)] == ["eor"]  # every peer sent End-of-RIB for IPv4 and IPv6
    got = _published(state)
    assert sorted(got) == [
        "lab1|transit-a|198.18.10.0/24",
        "lab1|transit-a|198.18.11.0/24",
        "lab1|transit-a|2001:db8:10::/48",
        "lab1|transit-a|2001:db8:11::/48",
        "lab1|transit-a|203.0.113.0/25",
        "lab1|transit-b|198.18.10.0/24",
        "lab1|transit-b|198.18.12.0/24",
        "lab1|transit-b|2001:db8:12::/48",
    ]
    r = got["lab1|transit-b|198.18.10.0/24"]
    assert (r.next_hop, r.as_path, r.origin, r.local_pref) == ("198.51.100.3", (64511,), "igp", 100)
    assert got["lab1|transit-a|2001:db8:11::/48"].next_hop == "2001:db8:ffff::2"
    t = session.take_tally()
    assert (t.announced, t.withdrawn, t.malformed, dict(t.ignored)) == (8, 0, {}, {"other-policy": 4})
    assert t.messages == {"initiation": 1, "peer-up": 2, "route-monitoring": 16}

    session.feed(frr_stream[cut:], now=3.0)  # the withdrawal, then peer-b's Peer Down
    assert {c.key: c.value for c in state.changes()} == {
        "lab1|transit-a|198.18.11.0/24": None,
        "lab1|transit-b|198.18.10.0/24": None,
        "lab1|transit-b|198.18.12.0/24": None,
        "lab1|transit-b|2001:db8:12::/48": None,
    }
    assert session.take_tally().peer_downs == {"remote-notification": 1}


def test_post_policy_takes_the_other_messages(frr_stream: bytes) -> None:
    state = RibState()
    session = _replay(frr_stream, state, policy="post")
    # FRR sent only the post-policy End-of-RIBs: no routes, and the sync is complete
    assert session.take_tally().ignored["other-policy"] == 13  # the 17 route monitorings less 4
    assert [e.how for e in state.tick(4.0)] == ["eor"] and state.changes() == []


def test_unmapped_peers_and_unknown_routers_are_counted_not_guessed(frr_stream: bytes) -> None:
    state = RibState()
    only_a = LinkMap.build([_link("transit-a", "other-router", PEER_A)])  # sysName matches nothing
    session = _replay(frr_stream, state, only_a)
    assert session.router is None and session.key == "127.0.0.1"
    state.tick(2.0)
    assert {c.key.split("|")[1] for c in state.changes()} == {"transit-a"}  # unique in the inventory: mapped
    assert session.take_tally().ignored["unmapped-peer"] >= 1
    ambiguous = LinkMap.build([_link("x", "r1", PEER_A), _link("y", "r2", PEER_A)])
    assert ambiguous.link(None, PEER_A) is None and ambiguous.link("r2", PEER_A) == LinkRef("lab1", "y")
    by_setting = LinkMap.build([_link("x", "r1", PEER_A, exporter="192.0.2.1")], {"127.0.0.1": "r1"})
    assert by_setting.identify("127.0.0.1", "bmp-r1") == "r1" and by_setting.identify("192.0.2.1", None) == "r1"


def test_malformed_messages_are_counted_and_the_session_goes_on() -> None:
    state = RibState()
    linkmap = LinkMap.build([_link("transit-a", "fra1-edge1", "198.51.100.1")])
    peer = ("198.51.100.1", 64500)
    good = w.update(["203.0.113.0/24"], [], w.attrs((64500,), next_hop="198.51.100.1"))
    stream = (
        w.initiation("fra1-edge1")
        + w.route_monitoring(*peer, good)  # before the Peer Up
        + w.peer_up(*peer)
        + w.bmp(w.ROUTE_MONITORING, b"\x00" * 20)  # too short for a per-peer header
        + w.route_monitoring(*peer, w.bgp(2, b"\x00\x05\x01"))  # a broken UPDATE
        + w.route_monitoring(*peer, w.bgp(2, b"")[:18])  # a broken BGP header
        + w.bmp(9, b"what")  # an unknown message type
        + w.bmp(w.INITIATION, b"\x00\x02\x00\x50abc")  # a TLV overrunning its message
        + w.route_monitoring(*peer, w.update(["198.18.0.0/24"], [], w.attrs(origin=9, next_hop="198.51.100.1")))
        + w.statistics(*peer)
        + w.route_monitoring(*peer, good)  # still decoded after all that
    )
    session = _replay(stream, state, linkmap, chunk=13)
    t = session.take_tally()
    assert dict(t.malformed) == {
        "no-peer-up": 1,
        "short-message": 1,
        "bad-update": 1,
        "bad-bgp-header": 1,
        "unknown-type": 1,
        "bad-tlv": 1,
        "treat-as-withdraw": 1,
    }
    assert t.announced == 1 and t.withdrawn == 1
    assert state.sessions["fra1-edge1"].peers["198.51.100.1"].routes.keys() == {"203.0.113.0/24"}
    with pytest.raises(f.FramingError) as exc:  # a broken stream: the server resets the session
        session.feed(b"\x07" + bytes(20), now=2.0)
    assert exc.value.reason == "bad-version"


def test_a_newer_session_of_the_router_takes_over() -> None:
    state = RibState()
    linkmap = LinkMap.build([_link("transit-a", "fra1-edge1", "198.51.100.1")])
    old = _replay(w.initiation("fra1-edge1") + w.peer_up("198.51.100.1", 64500), state, linkmap)
    new = _replay(w.initiation("fra1-edge1"), state, linkmap)
    assert new.owns_state() and not old.owns_state()
    with pytest.raises(f.FramingError) as exc:
        old.feed(w.peer_down("198.51.100.1", 64500), now=2.0)
    assert exc.value.reason == "replaced"
    old.close(3.0)  # the old connection ending does not put the new session down
    assert state.sessions["fra1-edge1"].state == "syncing"
