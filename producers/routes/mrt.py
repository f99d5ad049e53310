"""Routes from MRT TABLE_DUMP_V2 RIB dumps (RFC 6396), parsed with mrtparse.

A RIB dump lists, per prefix, the path each BGP peer announced. A peer is one of our
links when its address is one of that link's ``next_hops`` in the inventory (or given
explicitly). Peers that map to no link are counted and skipped, not guessed.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mrtparse

from netpilot.wire.routes import Route

_ORIGIN = {0: "igp", 1: "egp", 2: "incomplete"}
_RIB_SUBTYPES = {2: 4, 4: 6}  # RIB_IPV4_UNICAST, RIB_IPV6_UNICAST -> address family


@dataclass(frozen=True)
class LinkRef:
    pop: str
    link_id: str


@dataclass
class MrtReport:
    records: int = 0
    rib_entries: int = 0
    routes: int = 0
    unmapped_peers: Counter = field(default_factory=Counter)
    """peer address -> RIB entries skipped because the peer is no known link"""
    skipped_records: Counter = field(default_factory=Counter)
    """reason -> MRT records not used (other types, ADD-PATH, multicast, parse errors)"""
    errors: list[str] = field(default_factory=list)
    """first parse errors, for the operator"""


def read_mrt(path: Path | str, peers: Mapping[str, LinkRef], report: MrtReport | None = None) -> Iterator[Route]:
    """Yield one Route per (mapped peer, prefix) in a TABLE_DUMP_V2 file (.gz/.bz2 ok)."""
    report = report if report is not None else MrtReport()
    peer_table: list[str] = []
    for rec in mrtparse.Reader(str(path)):
        report.records += 1
        if rec.err:
            report.skipped_records["parse-error"] += 1
            if len(report.errors) < 10:
                report.errors.append(str(rec.err_msg))
            continue
        data = rec.data
        mrt_type = next(iter(data["type"]))
        subtype = next(iter(data["subtype"]))
        if mrt_type != 13:
            report.skipped_records["not-table-dump-v2"] += 1
            continue
        if subtype == 1:
            peer_table = [p["peer_ip"] for p in data["peer_entries"]]
            continue
        if subtype not in _RIB_SUBTYPES:
            report.skipped_records[f"td2-subtype-{subtype}"] += 1
            continue
        # canonical text, so the key of a prefix is the same whatever source loaded it
        prefix = str(ipaddress.ip_network(f"{data['prefix']}/{data['length']}", strict=False))
        for entry in data["rib_entries"]:
            report.rib_entries += 1
            idx = entry["peer_index"]
            peer_ip = peer_table[idx] if idx < len(peer_table) else f"#{idx}"
            link = peers.get(peer_ip)
            if link is None:
                report.unmapped_peers[peer_ip] += 1
                continue
            report.routes += 1
            yield _route(link, prefix, peer_ip, entry["path_attributes"])


def _route(link: LinkRef, prefix: str, peer_ip: str, attrs: list[dict]) -> Route:
    as_path: list[int] = []
    origin, local_pref, med, next_hop = "igp", 100, 0, None
    communities: list[str] = []
    for a in attrs:
        code = next(iter(a["type"]))
        value: Any = a.get("value")  # mrtparse's JSON-like attribute value
        if code == 1:
            origin = _ORIGIN.get(next(iter(value)), "incomplete")
        elif code in (2, 17):  # AS_PATH (4-byte in TABLE_DUMP_V2); AS4_PATH
            if code == 17 and as_path:
                continue
            for seg in value:
                # AS_SET members are appended as listed: order is meaningless there, and the
                # last element then is only *an* origin candidate (rare in practice)
                as_path.extend(int(asn) for asn in seg["value"])
        elif code == 3 and value:
            next_hop = value
        elif code == 4:
            med = int(value)
        elif code == 5:
            local_pref = int(value)
        elif code == 8:
            communities.extend(value)
        elif code == 14 and value and value.get("next_hop"):
            next_hop = value["next_hop"][0]
    return Route(
        pop=link.pop,
        link_id=link.link_id,
        prefix=prefix,
        next_hop=next_hop or peer_ip,
        as_path=tuple(as_path),
        origin=origin,  # type: ignore[arg-type]
        local_pref=local_pref,
        med=med,
        communities=tuple(communities),
    )


def peers_from_inventory(links: object) -> dict[str, LinkRef]:
    """Map every inventory link's ``next_hops`` (BGP neighbour addresses) to that link."""
    out: dict[str, LinkRef] = {}
    for link in links:  # type: ignore[attr-defined]
        for nh in link.next_hops:
            out[nh] = LinkRef(link.pop, link.link_id)
    return out
