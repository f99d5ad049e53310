"""Routes from YAML and CSV: what loads, and the message a user gets for each mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from producers.routes.source import RoutesFileError, load_routes_file

YAML_OK = """
routes:
  - {pop: fra1, link: transit-a, prefix: 203.0.113.0/24, next_hop: 198.51.100.1,
     as_path: [64500, 64510], origin: igp, local_pref: 200, med: 5, communities: ["64500:100"]}
  - {pop: fra1, link: pni-b, prefix: "2001:db8:100::/40"}
"""


def _problems(path: Path) -> list[str]:
    with pytest.raises(RoutesFileError) as exc:
        load_routes_file(path)
    return [i.describe().replace(str(path), path.name) for i in exc.value.issues]


def test_yaml_routes(tmp_path: Path) -> None:
    p = tmp_path / "routes.yaml"
    p.write_text(YAML_OK)
    a, b = load_routes_file(p)
    assert a.key() == "fra1|transit-a|203.0.113.0/24"
    assert (a.as_path, a.origin_as, a.local_pref, a.med, a.communities) == (
        (64500, 64510),
        64510,
        200,
        5,
        ("64500:100",),
    )
    assert b.prefix == "2001:db8:100::/40" and b.local_pref == 100 and b.as_path == ()


def test_csv_routes(tmp_path: Path) -> None:
    p = tmp_path / "routes.csv"
    p.write_text(
        "pop,link,prefix,next_hop,as_path,origin,local_pref,med,communities\n"
        "fra1,transit-a,203.0.113.0/24,198.51.100.1,64500 64510,egp,100,0,64500:1 64500:2\n"
        "ams1,transit-a,198.18.0.0/15,,,,,,\n"
    )
    a, b = load_routes_file(p)
    assert a.as_path == (64500, 64510) and a.origin == "egp" and a.communities == ("64500:1", "64500:2")
    assert b.key() == "ams1|transit-a|198.18.0.0/15" and b.next_hop is None


def test_yaml_mistakes_point_at_the_line(tmp_path: Path) -> None:
    p = tmp_path / "routes.yaml"
    p.write_text(
        "routes:\n"
        "  - {pop: fra1, link: l1, prefix: 203.0.113.1/24}\n"
        "  - {pop: fra1, prefix: 203.0.113.0/24}\n"
        "  - {pop: fra1, link: l1, prefix: 10.0.0.0/8, origin: bgp, lp: 5}\n"
    )
    assert _problems(p) == [
        "routes.yaml:2: routes[0].prefix: 203.0.113.1/24 has host bits set",
        "routes.yaml:3: routes[1].link: required key 'link' is missing",
        "routes.yaml:4: routes[2].lp: unknown key 'lp' (typo?)",
    ]


def test_yaml_bad_attribute_value(tmp_path: Path) -> None:
    p = tmp_path / "routes.yaml"
    p.write_text("routes:\n  - {pop: fra1, link: l1, prefix: 10.0.0.0/8, origin: bgp}\n")
    assert _problems(p) == ["routes.yaml:2: routes[0].origin: Input should be 'igp', 'egp' or 'incomplete' (got 'bgp')"]


def test_csv_mistakes_point_at_the_row(tmp_path: Path) -> None:
    p = tmp_path / "routes.csv"
    p.write_text("pop,link,prefix,local_pref\nfra1,l1,10.0.0.0/8,100\nfra1,l1,10.0.0.0/33,x\n")
    assert _problems(p) == ["routes.csv:3: prefix: '10.0.0.0/33' does not appear to be an IPv4 or IPv6 network"]
    p.write_text("pop,link,prefx\n")
    assert _problems(p) == [
        "routes.csv:1: bad header: unknown columns ['prefx'], missing "
        "['prefix']; columns are pop, link, prefix, next_hop, as_path, origin, "
        "local_pref, med, communities"
    ]
