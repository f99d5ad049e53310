"""JSON wire messages: versioned, forward compatible within a major, strict across majors."""

from __future__ import annotations

import json

import pytest

from netpilot.errors import WireError, WireVersionError
from netpilot.wire.autopilot import CycleSummary, LinkSide, Recommendation
from netpilot.wire.links import LinkInventory, LinkStats
from netpilot.wire.routes import Route


def test_round_trips() -> None:
    msgs = [
        LinkInventory(
            pop="ams1", link_id="ams1-r1:et-0/0/1", router="r1", capacity_bps=1e11, peer_asn=64500, peer_type="pni"
        ),
        LinkStats(pop="ams1", router="r1", if_index=5, ts=1.5, out_octets=2**64 - 1, out_bps=1e9),
        Route(pop="ams1", link_id="l1", prefix="2001:db8::/32", as_path=(64500, 64501)),
        Recommendation(
            id="i",
            cycle_id="c",
            generated_at=1,
            valid_until=2,
            pop="ams1",
            action="ADD",
            mode="suggest",
            prefix="198.51.100.0/24",
            afi=4,
            rate_bps=1e8,
            from_=LinkSide(link_id="a"),
            to=LinkSide(link_id="b"),
            reason="OVERLOAD",
        ),
        CycleSummary(cycle_id="c", pop="ams1", generated_at=1, mode="observe"),
    ]
    for m in msgs:
        raw = m.encode()
        assert json.loads(raw)["schema"] == type(m).schema_id()
        assert type(m).decode(raw) == m
    assert b'"from":' in msgs[3].encode()  # the design's field name, not from_


def test_newer_minor_fields_are_ignored_and_other_major_rejected() -> None:
    body = json.loads(Route(pop="p", link_id="l", prefix="192.0.2.0/24").encode())
    body["added_in_1_1"] = True
    assert Route.decode(json.dumps(body).encode()).prefix == "192.0.2.0/24"
    body["schema"] = "route/2"
    with pytest.raises(WireVersionError, match="route version '2'"):
        Route.decode(json.dumps(body).encode())
    body["schema"] = "link-stats/1"
    with pytest.raises(WireVersionError, match="expected schema 'route'"):
        Route.decode(json.dumps(body).encode())


@pytest.mark.parametrize("raw", [b"{", b"[1,2]", b'{"schema":"route/1"}', b'{"prefix":"x"}', None])
def test_bad_values_are_wire_errors(raw: bytes | None) -> None:
    with pytest.raises(WireError):
        Route.decode(raw)


def test_inventory_rejects_nonsense() -> None:
    body = json.loads(LinkInventory(pop="p", link_id="l", router="r", capacity_bps=1).encode())
    body["capacity_bps"] = -5
    with pytest.raises(WireError, match="capacity_bps"):
        LinkInventory.decode(json.dumps(body).encode())
