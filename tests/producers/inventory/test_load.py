"""Inventory validation: one test per kind of mistake, asserting the exact message a user sees."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from producers.inventory.load import InventoryError, load_inventory
from producers.inventory.model import parse_capacity

REPO = Path(__file__).resolve().parents[3]

GOOD_LINK = "{if_name: et1, capacity: 10G}"


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "inv.yaml"
    p.write_text(textwrap.dedent(text).lstrip("\n"))
    return p


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = _write(tmp_path, text)
    with pytest.raises(InventoryError) as exc:
        load_inventory(path)
    # the whole message is what `netpilot inventory check` prints
    assert str(exc.value).startswith("inventory has ")
    return [i.describe().replace(str(path), "inv.yaml") for i in exc.value.issues]


def test_example_inventory_is_valid() -> None:
    inv = load_inventory(REPO / "examples" / "inventory.yaml")
    keyed = inv.keyed()
    assert set(keyed) == {"fra1|transit-a", "fra1|pni-b", "fra1|ix-decix", "ams1|transit-a"}
    pni = keyed["fra1|pni-b"]
    assert pni.capacity_bps == 10e9 and pni.peer_type == "pni" and pni.peer_asn == 64501
    # the link's own hi wins, the PoP's target/release fill the rest
    assert (pni.thresholds.hi, pni.thresholds.target, pni.thresholds.release) == (0.9, 0.75, 0.6)
    assert keyed["fra1|ix-decix"].drained and keyed["fra1|ix-decix"].if_index == 17
    assert keyed["fra1|transit-a"].exporter == "192.0.2.10"
    assert [r.router for r in inv.routers] == ["fra1-edge1", "fra1-edge2", "ams1-edge1"]
    assert inv.routers[1].snmp.version == "3"


# One case per kind of mistake: what a user wrote, and exactly what `netpilot inventory check`
# prints for it (after its 'inventory has N problems:' line).
MISTAKES = [
    pytest.param(
        """
        pops:
          fra1: {routers: {r1: 
        """,  # noqa: W291 - the trailing space is part of the broken YAML under test
        ["inv.yaml:3:1: not valid YAML: expected the node content, but found '<stream end>'"],
        id="yaml-syntax-error-gives-line-and-column",
    ),
    pytest.param(
        """
        pops:
          fra1:
            routers:
              r1:
                snmp: {target: 192.0.2.1, credentials: ro}
                links:
                  l1: {if_name: et1, capacity: 10G, peer_asm: 64500}
        """,
        ["inv.yaml:7: pops.fra1.routers.r1.links.l1.peer_asm: unknown key 'peer_asm' (typo?)"],
        id="unknown-key",
    ),
    pytest.param(
        """
        pops:
          fra1:
            routers:
              r1:
                snmp: {target: 192.0.2.1, credentials: ro}
                links:
                  l1:
                    if_name: et1
        """,
        ["inv.yaml:7: pops.fra1.routers.r1.links.l1.capacity: required key 'capacity' is missing"],
        id="missing-capacity",
    ),
    pytest.param(
        """
        pops:
          fra1:
            routers:
              r1:
                snmp: {target: 192.0.2.1, credentials: ro}
                links:
                  l1:
                    if_name: et1
                    capacity: 10 gigs
        """,
        [
            "inv.yaml:9: pops.fra1.routers.r1.links.l1.capacity: capacity '10 gigs' is not "
            "understood; write bit/s as a number or with a unit: 400M, 10G, 100Gbps, 1.6T "
            "(got '10 gigs')"
        ],
        id="bad-capacity-unit",
    ),
    pytest.param(
        """
        pops:
          fra1:
            routers:
              r1:
                snmp: {target: 192.0.2.1, credentials: ro}
                links:
                  l1: {if_name: et1, capacity: 10G, peer_type: peering}
        """,
        [
            "inv.yaml:7: pops.fra1.routers.r1.links.l1.peer_type: Input should be 'transit', "
            "'pni', 'ix', 'route-server' or 'internal' (got 'peering')"
        ],
        id="unknown-peer-type",
    ),
    pytest.param(
        """
        pops:
          fra1:
            routers:
              r1:
                snmp: {target: 192.0.2.1, credentials: ro}
                links:
                  l1: {if_name: et1, capacity: 10G, peer_asn: 4294967296}
        """,
        [
            "inv.yaml:7: pops.fra1.routers.r1.links.l1.peer_asn: Input should be less than "
            "or equal to 4294967295 (got 4294967296)"
        ],
        id="peer-asn-out-of-range",
    ),
    pytest.param(
        """
        pops:
          fra1:
            routers:
              r1:
                snmp: {target: 192.0.2.1, credentials: ro}
                links:
                  l1: {capacity: 10G}
        """,
        ["inv.yaml:7: pops.fra1.routers.r1.links.l1: a link needs if_name (preferred: survives reboots) or if_index"],
        id="link-without-interface",
    ),
    pytest.param(
        f"""
        pops:
          fra1:
            routers:
              r1:
                exporters: [192.0.2.300]
                snmp: {{target: 192.0.2.1, credentials: ro}}
                links: {{l1: {GOOD_LINK}}}
        """,
        ["inv.yaml:5: pops.fra1.routers.r1.exporters: exporter '192.0.2.300' is not an IPv4 or IPv6 address"],
        id="bad-exporter-address",
    ),
    pytest.param(
        f"""
        pops:
          fra1:
            routers:
              r1:
                snmp: {{target: "192.0.2.1:99999", credentials: ro}}
                links: {{l1: {GOOD_LINK}}}
        """,
        [
            "inv.yaml:5: pops.fra1.routers.r1.snmp.target: snmp target port 99999 is out of "
            "range 1..65535 (got '192.0.2.1:99999')"
        ],
        id="bad-snmp-target-port",
    ),
    pytest.param(
        f"""
        pops:
          fra1:
            routers:
              r1:
                snmp: {{target: 192.0.2.1, credentials: ro}}
                links:
                  l1: {GOOD_LINK}
                  l1: {{if_name: et2, capacity: 1G}}
        """,
        [
            "inv.yaml:8: pops.fra1.routers.r1.links.l1: duplicate key 'l1' (first defined "
            "on line 7); the later one would silently win"
        ],
        id="duplicate-yaml-key-is-not-silently-overwritten",
    ),
    pytest.param(
        f"""
        pops:
          fra1:
            routers:
              r1:
                snmp: {{target: 192.0.2.1, credentials: ro}}
                links: {{l1: {GOOD_LINK}}}
              r2:
                snmp: {{target: 192.0.2.2, credentials: ro}}
                links: {{l1: {GOOD_LINK}}}
        """,
        [
            "inv.yaml:9: pops.fra1.routers.r2.links.l1: link id 'l1' is used twice in PoP "
            "'fra1' (also on line 6); link ids must be unique per PoP"
        ],
        id="link-id-used-on-two-routers-of-a-pop",
    ),
    pytest.param(
        f"""
        pops:
          fra1:
            routers:
              r1:
                snmp: {{target: 192.0.2.1, credentials: ro}}
                links:
                  l1: {GOOD_LINK}
                  l2: {GOOD_LINK}
        """,
        ["inv.yaml:8: pops.fra1.routers.r1.links.l2.if_name: interface 'et1' is already link 'l1' of router 'r1'"],
        id="interface-used-by-two-links",
    ),
    pytest.param(
        f"""
        pops:
          "fra|1":
            routers:
              r1:
                snmp: {{target: 192.0.2.1, credentials: ro}}
                links: {{l1: {GOOD_LINK}}}
        """,
        [
            "inv.yaml:2: pops.fra|1: PoP name 'fra|1' may only contain letters, digits and "
            "'._:/-' (it becomes part of a Kafka key 'pop|link_id')"
        ],
        id="key-separator-in-a-name",
    ),
    pytest.param(
        """
        pops:
          fra1:
            thresholds: {hi: 0.85, target: 0.75}
            routers:
              r1:
                snmp: {target: 192.0.2.1, credentials: ro}
                links:
                  l1: {if_name: et1, capacity: 10G, thresholds: {target: 0.9}}
        """,
        [
            "inv.yaml:8: pops.fra1.routers.r1.links.l1.thresholds: thresholds must satisfy "
            "release < target < hi, but target=0.9 >= hi=0.85"
        ],
        id="thresholds-out-of-order-after-merging-pop-defaults",
    ),
    pytest.param(
        f"""
        pops:
          fra1:
            routers:
              r1:
                links: {{l1: {GOOD_LINK}}}
        """,
        [
            "inv.yaml:4: pops.fra1.routers.r1: router 'r1' has links but no 'snmp:' target, "
            "so its counters cannot be polled (write 'counters: external' if link-stats come from "
            "elsewhere)"
        ],
        id="router-with-links-but-no-snmp",
    ),
    pytest.param(
        f"""
        pops:
          fra1:
            routers:
              r1:
                snmp: {{target: 192.0.2.1, credentials: ro}}
                counters: external
                links: {{l1: {GOOD_LINK}}}
        """,
        [
            "inv.yaml:6: pops.fra1.routers.r1.counters: router 'r1' says 'counters: external' but "
            "also has an 'snmp:' target; keep one (external counters are not polled)"
        ],
        id="external-counters-and-snmp",
    ),
    pytest.param(
        f"""
        pops:
          fra1:
            routers:
              r1:
                counters: sflow
                links: {{l1: {GOOD_LINK}}}
        """,
        ["inv.yaml:5: pops.fra1.routers.r1.counters: Input should be 'snmp' or 'external' (got 'sflow')"],
        id="counters-unknown-source",
    ),
    pytest.param(
        "- a\n- b\n", ["inv.yaml:1: the top level must be a mapping with a 'pops:' key"], id="top-level-not-a-mapping"
    ),
]


@pytest.mark.parametrize(("text", "expected"), MISTAKES)
def test_mistake_gives_a_precise_message(tmp_path: Path, text: str, expected: list[str]) -> None:
    assert _problems(tmp_path, text) == expected


def test_external_counters_need_no_snmp_target(tmp_path: Path) -> None:
    """Counters published by someone else (sFlow counter samples, the simulator): the links
    are in the inventory, the router is not an SNMP target."""
    inv = load_inventory(
        _write(
            tmp_path,
            f"""
        pops:
          fra1:
            routers:
              r1:
                exporters: [192.0.2.1]
                counters: external
                links: {{l1: {GOOD_LINK}}}
        """,
        )
    )
    assert [link.link_id for link in inv.links] == ["l1"] and inv.links[0].exporter == "192.0.2.1"
    assert inv.routers == ()


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    problems = _problems(
        tmp_path,
        """
        pops:
          fra1:
            routers:
              r1:
                snmp: {target: 192.0.2.1, credentials: ro}
                links:
                  l1: {if_name: et1, capacity: -5}
                  l2: {if_name: et2, capacity: 1G, drained: maybe}
        """,
    )
    assert problems == [
        "inv.yaml:7: pops.fra1.routers.r1.links.l1.capacity: capacity must be > 0 (got -5)",
        "inv.yaml:8: pops.fra1.routers.r1.links.l2.drained: Input should be a valid boolean, "
        "unable to interpret input (got 'maybe')",
    ]


@pytest.mark.parametrize(
    ("text", "bps"),
    [("100G", 100e9), ("10Gbps", 10e9), ("400M", 400e6), ("2.5g", 2.5e9), (1000, 1000.0), ("1.6T", 1.6e12)],
)
def test_capacity_units(text: object, bps: float) -> None:
    assert parse_capacity(text) == bps
