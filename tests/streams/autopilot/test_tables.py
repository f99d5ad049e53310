"""Columnar scenario tables (routes_file, demand_file) and the splitting example scenario."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from streams.autopilot import scenario as scn
from streams.autopilot.errors import ScenarioError
from tests.streams.autopilot.test_cli import REPO, run_cli

SPLIT = REPO / "examples" / "scenarios" / "ams1-heavy-prefix-split.yaml"
TABLES = REPO / "examples" / "scenarios" / "ams1-split-tables" / "scenario.yaml"


def _changes(path: Path, *extra: str) -> list[tuple]:
    out = run_cli("--scenario", str(path), "--changes-only", *extra)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    return [
        (l["action"], l["prefix"], l["split_from"], l["to"]["link_id"], l["to"]["route_prefix"], l["to"]["as_path"])
        if l["schema"] == "recommendation/1"
        else ("summary", l["unresolved_bps"], l["util_projected"])
        for l in lines
    ]


def test_split_example_moves_one_measured_half_of_the_heavy_route() -> None:
    changes = _changes(SPLIT)
    half = ("ADD", "198.51.101.0/24", "198.51.100.0/23", "pr2:et-0/0/3", "198.51.100.0/23", [64501, 64500])
    assert changes[0] == half
    after = changes[1]
    assert after[1] == {} and after[2]["pr1:et-0/0/1"] == pytest.approx(0.85)
    assert len(changes) == 4 and all(c[0] == "summary" for c in changes[1:])  # then only refreshes


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_table_scenario_plans_exactly_like_the_inline_one(tmp_path: Path, fmt: str) -> None:
    if fmt == "csv":
        path = TABLES
    else:  # the same tables written as Parquet next to a copy of the scenario
        here = TABLES.parent
        routes = pl.read_csv(here / "routes.csv", schema_overrides={"as_path": pl.String})
        routes = routes.with_columns(pl.col("as_path").str.split(" ").cast(pl.List(pl.Int64)))
        routes.write_parquet(tmp_path / "routes.parquet")
        pl.read_csv(here / "demand.csv").write_parquet(tmp_path / "demand.parquet")
        text = TABLES.read_text().replace("routes.csv", "routes.parquet").replace("demand.csv", "demand.parquet")
        path = tmp_path / "scenario.yaml"
        path.write_text(text)
    assert _changes(path) == _changes(SPLIT)
    # And the snapshots are the same, row for row.
    inline = next(scn.cycles(scn.load(SPLIT))).snapshot
    table = next(scn.cycles(scn.load(path))).snapshot
    assert table.prefixes == inline.prefixes
    assert table.routes.as_path == inline.routes.as_path and table.routes.next_hop == inline.routes.next_hop
    assert table.routes.local_pref.tolist() == inline.routes.local_pref.tolist()
    assert table.demand.rate_bps.tolist() == inline.demand.rate_bps.tolist()
    assert table.demand.samples.tolist() == inline.demand.samples.tolist()


def _scenario(tmp_path: Path, routes: str, demand: str) -> Path:
    (tmp_path / "routes.csv").write_text(routes)
    (tmp_path / "demand.csv").write_text(demand)
    text = TABLES.read_text()
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    return path


ROUTES = "link_id,prefix\npr1:et-0/0/1,198.51.100.0/23\npr2:et-0/0/3,198.51.100.0/23\n"
DEMAND = "link_id,prefix,rate_bps\npr1:et-0/0/1,198.51.100.0/24,9e8\n"


@pytest.mark.parametrize(
    ("routes", "demand", "message"),
    [
        (ROUTES.replace("link_id,prefix", "link_id,prefix,lp").replace("/23\n", "/23,1\n"), DEMAND, "unknown ['lp']"),
        (ROUTES, "link_id,rate_bps\npr1:et-0/0/1,1\n", "missing ['prefix']"),
        (ROUTES, DEMAND + "pr1:et-0/0/1,198.51.101.0/24,-5\n", "row 1: rate must be a number >= 0"),
        (ROUTES, DEMAND + "pr9:x,198.51.101.0/24,5\n", "row 1: unknown link 'pr9:x'"),
        (ROUTES + "pr2:et-0/0/3,198.51.100.1/23\n", DEMAND, "row 2: bad prefix '198.51.100.1/23'"),
        (ROUTES.replace("/23\n", "/23,x\n").replace("link_id,prefix", "link_id,prefix,origin"), DEMAND, "origin"),
    ],
    ids=["unknown-column", "missing-column", "negative-rate", "unknown-link", "host-bits", "bad-origin"],
)
def test_bad_tables_are_refused_naming_file_and_row(tmp_path: Path, routes: str, demand: str, message: str) -> None:
    path = _scenario(tmp_path, routes, demand)
    with pytest.raises(ScenarioError, match="csv") as exc:
        list(scn.cycles(scn.load(path)))
    assert message in str(exc.value)


def test_bad_table_exits_2_from_the_cli(tmp_path: Path) -> None:
    out = run_cli("--scenario", str(_scenario(tmp_path, ROUTES, DEMAND + "pr9:x,198.51.101.0/24,5\n")))
    assert out.returncode == 2 and "demand.csv row 1: unknown link 'pr9:x'" in out.stderr


def test_demand_and_demand_file_together_are_an_error(tmp_path: Path) -> None:
    path = _scenario(tmp_path, ROUTES, DEMAND)
    path.write_text(path.read_text().replace("demand_file: demand.csv", "demand_file: demand.csv\n    demand: {}"))
    with pytest.raises(ScenarioError, match="both demand and demand_file"):
        scn.load(path)
