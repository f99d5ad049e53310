"""The collector's one rule, driven directly: what becomes a record, a tombstone or nothing."""

from __future__ import annotations

from netpilot.wire.routes import Route
from producers.routes.bmp.bgp import PathAttrs
from producers.routes.bmp.rib import Change, RibState, encode_route
from producers.routes.mrt import LinkRef

L1, L2 = LinkRef("fra1", "transit-a"), LinkRef("fra1", "pni-b")
A = PathAttrs("198.51.100.1", (64500, 64501), "igp", 100, 0, ("64500:1",))
B = PathAttrs("198.51.100.9", (64509,), "igp", 100, 0, ())
R = "fra1-edge1"


def _live(state: RibState, now: float = 0.0) -> None:
    """Open a session with one peer per link and end its sync."""
    state.open_session(R, R, [L1, L2], now)
    state.peer_up(R, "198.51.100.1", L1, [4], now)
    state.peer_up(R, "198.51.100.2", L2, [4], now)
    state.end_of_rib(R, "198.51.100.1", 4, now)
    state.end_of_rib(R, "198.51.100.2", 4, now)
    assert [e.how for e in state.tick(now)] == ["eor"]


def _keys(changes: list[Change]) -> dict[str, Route | None]:
    return {c.key: None if c.value is None else Route.decode(c.value) for c in changes}


def test_announce_withdraw_and_peer_down() -> None:
    state = RibState()
    _live(state)
    state.update(R, "198.51.100.1", [("203.0.113.0/24", 0, A), ("198.18.0.0/15", 0, A)], [], 1)
    state.update(R, "198.51.100.2", [("203.0.113.0/24", 0, B)], [], 1)
    got = _keys(state.changes())
    assert set(got) == {"fra1|transit-a|203.0.113.0/24", "fra1|transit-a|198.18.0.0/15", "fra1|pni-b|203.0.113.0/24"}
    assert got["fra1|transit-a|203.0.113.0/24"] == Route(
        pop="fra1",
        link_id="transit-a",
        prefix="203.0.113.0/24",
        next_hop="198.51.100.1",
        as_path=(64500, 64501),
        communities=("64500:1",),
    )
    state.update(R, "198.51.100.1", [("203.0.113.0/24", 0, A)], [], 2)  # the same again: nothing
    assert state.changes() == []
    state.update(R, "198.51.100.1", [], [("198.18.0.0/15", 0), ("192.0.2.0/24", 0)], 3)  # one known, one not
    assert _keys(state.changes()) == {"fra1|transit-a|198.18.0.0/15": None}
    assert state.peer_down(R, "198.51.100.1", 4)
    assert _keys(state.changes()) == {"fra1|transit-a|203.0.113.0/24": None}  # exactly what peer 1 had
    assert state.published == {L1: {}, L2: {"203.0.113.0/24": hash(encode_route(L2, "203.0.113.0/24", B, ""))}}


def test_two_peers_on_one_link_a_withdrawal_falls_back_to_the_other() -> None:
    state = RibState()
    state.open_session(R, R, [L1], 0)
    state.peer_up(R, "198.51.100.1", L1, [4], 0)
    state.peer_up(R, "2001:db8::1", L1, [6], 0)
    state.tick(100)  # quiet: live
    state.update(R, "2001:db8::1", [("203.0.113.0/24", 0, B)], [], 101)
    state.update(R, "198.51.100.1", [("203.0.113.0/24", 0, A)], [], 101)
    (only,) = state.changes()
    assert Route.decode(only.value).next_hop == "198.51.100.1"  # the lower address wins, whatever came first
    state.update(R, "198.51.100.1", [], [("203.0.113.0/24", 0)], 102)
    (after,) = state.changes()
    assert Route.decode(after.value).next_hop == "198.51.100.9"  # not a tombstone: the link still reaches it


def test_restart_converges_without_false_withdrawals() -> None:
    """The topic as a previous run left it; the router resends its RIB; one route went away
    meanwhile, one changed. Exactly those two records come out, and only at the sync end."""
    before = RibState()
    _live(before)
    before.update(R, "198.51.100.1", [(f"198.18.{i}.0/24", 0, A) for i in range(100)], [], 1)
    topic = [(c.key, c.value) for c in before.changes()]

    state = RibState(settle_s=5)
    assert state.load_published(topic + [("fra1|transit-a|192.0.2.0/24", None)]) == 100
    state.open_session(R, R, [L1, L2], 10)
    state.peer_up(R, "198.51.100.1", L1, [4, 6], 10)
    resent = [(f"198.18.{i}.0/24", 0, A) for i in range(1, 100)]  # 198.18.0.0/24 is gone
    resent[5] = ("198.18.6.0/24", 0, B)  # changed
    state.update(R, "198.51.100.1", resent[:50], [], 11)
    assert _keys(state.changes()) == {
        "fra1|transit-a|198.18.6.0/24": Route.decode(encode_route(L1, "198.18.6.0/24", B, ""))
    }
    state.update(R, "198.51.100.1", resent[50:], [], 12)
    state.end_of_rib(R, "198.51.100.1", 4, 12)
    assert state.tick(13) == [] and state.changes() == []  # IPv6 End-of-RIB still due: syncing
    assert state.deferred == 0
    state.end_of_rib(R, "198.51.100.1", 6, 14)
    (ev,) = state.tick(14)
    assert (ev.how, ev.seconds) == ("eor", 4)
    assert _keys(state.changes()) == {"fra1|transit-a|198.18.0.0/24": None}


def test_tombstones_wait_while_syncing_and_a_quiet_session_ends_its_sync() -> None:
    state = RibState(settle_s=5, sync_max_s=60)
    state.load_published([("fra1|transit-a|198.18.0.0/24", encode_route(L1, "198.18.0.0/24", A, ""))])
    state.open_session(R, R, [L1], 0)
    state.peer_up(R, "198.51.100.1", L1, [4], 0)
    state.update(R, "198.51.100.1", [("198.18.0.0/24", 0, B)], [], 1)  # a change is published at once
    assert [c.value is not None for c in state.changes()] == [True]
    state.update(R, "198.51.100.1", [], [("198.18.0.0/24", 0)], 2)  # a withdrawal waits for the sync
    assert state.changes() == [] and state.deferred == 1
    assert state.tick(6) == []  # 4 s quiet
    (ev,) = state.tick(7)
    assert ev.how == "quiet"
    assert _keys(state.changes()) == {"fra1|transit-a|198.18.0.0/24": None}


def test_a_session_that_never_settles_ends_at_sync_max() -> None:
    state = RibState(settle_s=5, sync_max_s=20)
    state.open_session(R, R, [L1], 0)
    state.peer_up(R, "198.51.100.1", L1, [4], 0)
    for t in range(1, 25):
        state.update(R, "198.51.100.1", [(f"198.18.{t}.0/24", 0, A)], [], t)
        events = state.tick(t)
        if events:
            assert (t, events[0].how) == (20, "timeout")
            break
    else:
        raise AssertionError("never ended")


def test_a_lost_session_is_held_then_withdrawn() -> None:
    state = RibState(hold_s=60)
    _live(state)
    state.update(R, "198.51.100.1", [("203.0.113.0/24", 0, A)], [], 1)
    state.changes()
    state.close_session(R, 10)
    assert state.tick(69) == [] and state.changes() == []  # held: no withdrawal yet
    (ev,) = state.tick(70)
    assert (ev.how, ev.state) == ("hold-expired", "down")
    assert _keys(state.changes()) == {"fra1|transit-a|203.0.113.0/24": None}
    assert R not in state.sessions


def test_a_reconnect_within_the_hold_diffs_against_the_old_routes() -> None:
    state = RibState(settle_s=5, hold_s=60)
    _live(state)
    state.update(R, "198.51.100.1", [("203.0.113.0/24", 0, A), ("198.18.0.0/24", 0, A)], [], 1)
    state.changes()
    state.close_session(R, 10)
    state.open_session(R, R, [L1, L2], 20)
    state.peer_up(R, "198.51.100.1", L1, [4], 20)
    state.update(R, "198.51.100.1", [("203.0.113.0/24", 0, A)], [], 21)
    state.end_of_rib(R, "198.51.100.1", 4, 21)
    assert state.changes() == []  # L1's other route is only missing so far: nothing yet
    (ev,) = state.tick(22)  # every peer that came up sent its End-of-RIB (L2's peer stayed down)
    assert ev.how == "eor"
    assert _keys(state.changes()) == {"fra1|transit-a|198.18.0.0/24": None}


def test_add_path_keeps_the_prefix_while_any_path_is_left() -> None:
    state = RibState()
    _live(state)
    state.update(R, "198.51.100.1", [("203.0.113.0/24", 7, A), ("203.0.113.0/24", 3, B)], [], 1)
    (c,) = state.changes()
    assert Route.decode(c.value).next_hop == B.next_hop  # the lowest path id
    state.update(R, "198.51.100.1", [], [("203.0.113.0/24", 3)], 2)
    (c,) = state.changes()
    assert Route.decode(c.value).next_hop == A.next_hop
    state.update(R, "198.51.100.1", [], [("203.0.113.0/24", 7)], 3)
    assert [c.value for c in state.changes()] == [None]


def test_the_fast_encoder_writes_what_route_encode_writes() -> None:
    for link, prefix, attrs, peer in (
        (L1, "203.0.113.0/24", A, "198.51.100.1"),
        (L2, "2001:db8:10::/48", PathAttrs(None, (), "incomplete", 0, 4294967295, ("65535:65281",)), "2001:db8::1"),
    ):
        validated = Route(
            pop=link.pop,
            link_id=link.link_id,
            prefix=prefix,
            next_hop=attrs.next_hop or peer,
            as_path=attrs.as_path,
            origin=attrs.origin,
            local_pref=attrs.local_pref,
            med=attrs.med,
            communities=attrs.communities,
        )
        assert encode_route(link, prefix, attrs, peer) == validated.encode()
