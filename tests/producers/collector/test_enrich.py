"""Enrichment and the inventory loader (pure, no broker)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import numpy as np
import pytest

from netpilot.errors import ConfigError
from netpilot.wire.flows import FlowFlags, str_to_addr
from producers.collector.decode.result import ChunkBuilder
from producers.collector.enrich import Enricher
from producers.collector.inventory import load_inventory

INVENTORY = """
pops:
  - name: ams1
    routers:
      - {name: ams1-r1, exporter: 192.0.2.1, sampling_rate: 100, links: [{link_id: ams1-t1, if_index: 5}]}
  - name: fra1
    routers:
      - {name: fra1-r1, exporter: "2001:db8::1", links: [{link_id: fra1-t1, if_index: 5}, {link_id: fra1-p1, if_index: 6}]}
routes:
  - {prefix: 198.51.100.0/24, dst_as: 64501}
"""  # noqa: E501 - inventory YAML under test


def addrs(*texts: str) -> np.ndarray:
    return np.frombuffer(b"".join(str_to_addr(t) for t in texts), np.uint8).reshape(-1, 16)


def columns(exporters: list[str], out_ifs: list[int], dsts: list[str], dst_as: list[int]) -> dict:
    b = ChunkBuilder()
    n = len(exporters)
    b.add(
        n,
        {
            "exporter": addrs(*exporters),
            "out_if": np.array(out_ifs, np.uint32),
            "dst_addr": addrs(*dsts),
            "dst_as": np.array(dst_as, np.uint32),
            "bytes": np.ones(n, np.uint64),
        },
    )
    return b.finish().columns


@pytest.fixture
def enricher(tmp_path: Path) -> Enricher:
    f = tmp_path / "inv.yaml"
    f.write_text(INVENTORY)
    return Enricher(load_inventory(f))


def test_exporter_link_prefix_and_as(enricher: Enricher) -> None:
    cols = columns(
        ["192.0.2.1", "2001:db8::1", "2001:db8::1", "192.0.2.9"],
        [5, 5, 6, 5],
        ["198.51.100.1", "198.51.100.2", "203.0.113.1", "198.51.100.3"],
        [0, 0, 64999, 0],
    )
    e = enricher.enrich(cols)
    pop_idx, pop_dict = e.columns["pop"]
    assert [pop_dict[i] for i in pop_idx] == ["ams1", "fra1", "fra1", ""]
    link_idx, link_dict = e.columns["link_id"]
    assert [link_dict[i] for i in link_idx] == ["ams1-t1", "fra1-t1", "fra1-p1", ""]
    assert e.columns["dst_as"].tolist() == [64501, 64501, 64999, 64501]  # no route: exporter's AS kept
    assert e.columns["dst_prefix_len"].tolist() == [24, 24, 0, 24]
    flags = e.columns["flags"]
    assert flags[2] & FlowFlags.PREFIX_UNKNOWN and not flags[0] & FlowFlags.PREFIX_UNKNOWN
    assert flags[3] & FlowFlags.LINK_UNKNOWN and not flags[1] & FlowFlags.LINK_UNKNOWN
    assert e.pop_index.tolist() == [0, 1, 1, -1]
    assert (e.link_unknown, e.prefix_unknown) == (1, 1)
    assert enricher.sampling_defaults == {str_to_addr("192.0.2.1"): 100}


def test_inventory_errors_name_the_problem(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("pops: [{name: x, routers: [{name: r, exporter: not-an-ip}]}]")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_inventory(f)
    f.write_text("pops: [{name: x, routers: [{name: a, exporter: 192.0.2.1}, {name: b, exporter: 192.0.2.1}]}]")
    with pytest.raises(ConfigError, match="192.0.2.1 is listed for both a and b"):
        load_inventory(f)
    f.write_text("pops: [{name: x, rooters: []}]")
    with pytest.raises(ConfigError):
        load_inventory(f)


def test_project_inventory_and_routes_files(tmp_path: Path) -> None:
    """The collector reads the same inventory/routes files as `netpilot inventory publish`
    and `netpilot routes load`: every exporter of a router, links by if_index, origin AS."""
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "routes:\n"
        "  - {pop: fra1, link: ix-decix, prefix: 198.51.100.0/24, as_path: [6695, 64510]}\n"
        "  - {pop: fra1, link: transit-a, prefix: 198.51.100.0/24, as_path: [64500, 64999]}\n"
    )
    inv = load_inventory(REPO_EXAMPLE, routes)
    e = Enricher(inv).enrich(
        columns(
            ["192.0.2.11", "2001:db8::11", "192.0.2.10", "192.0.2.20"], [17, 17, 3, 3], ["198.51.100.1"] * 4, [0] * 4
        )
    )
    link_idx, link_dict = e.columns["link_id"]
    # fra1-edge1 names its links by if_name only: not matchable from flows, flagged unknown
    assert [link_dict[i] for i in link_idx] == ["ix-decix", "ix-decix", "", ""]
    pop_idx, pop_dict = e.columns["pop"]
    assert [pop_dict[i] for i in pop_idx] == ["fra1", "fra1", "fra1", "ams1"]
    assert e.columns["dst_as"].tolist() == [64510] * 4  # first route per prefix wins


def test_project_inventory_errors_are_the_inventory_checkers(tmp_path: Path) -> None:
    f = tmp_path / "inv.yaml"
    f.write_text(
        "pops:\n  fra1:\n    routers:\n      r1:\n        exporters: [192.0.2.1]\n"
        "        links: {l1: {if_index: 3, capacity: 10G}}\n"
    )
    with pytest.raises(ConfigError, match=r"inv.yaml:4: .*no 'snmp:' target"):
        load_inventory(f)


REPO_EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "inventory.yaml"


def test_finer_destinations_inside_short_routes(tmp_path: Path) -> None:
    """demand_prefix_len_v4/v6: a flow to a route shorter than /24 (/48) is reported at the
    /24 (/48) holding its destination, so the autopilot sees demand per more-specific and can
    split a heavy route on measurements; longer routes and unrouted flows are unchanged."""
    f = tmp_path / "inv.yaml"
    f.write_text(
        INVENTORY.replace(
            "  - {prefix: 198.51.100.0/24, dst_as: 64501}",
            "  - {prefix: 198.51.100.0/22, dst_as: 64501}\n"
            "  - {prefix: 198.51.103.128/25, dst_as: 64502}\n"
            '  - {prefix: "2001:db8::/32", dst_as: 64503}',
        )
    )
    dsts = ["198.51.101.7", "198.51.102.200", "198.51.103.130", "203.0.113.1", "2001:db8:5:1::9"]
    cols = columns(["192.0.2.1"] * 5, [5] * 5, dsts, [0] * 5)

    def prefixes(e: Enricher) -> list[str]:
        out = e.enrich(dict(cols)).columns
        return [
            f"{ipaddress.ip_address(bytes(a)).ipv4_mapped or ipaddress.ip_address(bytes(a))}/{n}"
            for a, n in zip(out["dst_prefix"], out["dst_prefix_len"].tolist())
        ]

    inventory = load_inventory(f)
    assert prefixes(Enricher(inventory)) == [
        "198.51.100.0/22",
        "198.51.100.0/22",
        "198.51.103.128/25",
        "::/0",
        "2001:db8::/32",
    ]
    assert prefixes(Enricher(inventory, 24, 48)) == [
        "198.51.101.0/24",
        "198.51.102.0/24",
        "198.51.103.128/25",  # already longer than /24: the route
        "::/0",  # no route: nothing to refine
        "2001:db8:5::/48",
    ]
