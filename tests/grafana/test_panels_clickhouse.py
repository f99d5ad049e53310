"""Every ClickHouse panel of every dashboard, macros expanded as the plugin does, against the
simulator-filled store: rows come back and the values are plausible."""

from __future__ import annotations

import math
import statistics
from dataclasses import replace

import pyarrow as pa
import pytest

from grafana import generate
from grafana.macros import QueryContext, expand_sql
from grafana.panels import PanelQuery, all_variable_values, clickhouse_panels, query_arrow, run_panel
from sinks.clickhouse.client import ClickHouseClient
from tests.grafana.store import Store

DASHBOARDS = generate.load_all()
PANELS = clickhouse_panels(DASHBOARDS)
BY_TITLE = {d["title"]: d for d in DASHBOARDS.values()}
# Interval -> table the flow panels read: raw, flows_1m, flows_5m, flows_1h.
INTERVALS = (10, 60, 300, 3600)


def _ctx(store: Store, interval: float) -> QueryContext:
    # from an hour boundary: the coarsest rollup window (1 h) starts inside the range
    return QueryContext(from_s=store.start_s // 3600 * 3600, to_s=store.end_s + 60, interval_s=interval)


def _run(
    client: ClickHouseClient, store: Store, panel: PanelQuery, interval: float, **variables: list[str]
) -> pa.Table:
    ctx = replace(_ctx(store, interval), variables=variables)
    ctx = all_variable_values(client, BY_TITLE[panel.dashboard], ctx)
    return run_panel(client, panel, ctx)


def _panel(title: str) -> PanelQuery:
    [p] = [p for p in PANELS if p.title == title]
    return p


def _col(t: pa.Table, name: str) -> list:
    return t.column(name).to_pylist()


def test_every_dashboard_has_clickhouse_panels() -> None:
    assert {p.dashboard for p in PANELS} == {
        "netpilot / Network overview",
        "netpilot / Egress links",
        "netpilot / Autopilot",
    }
    assert len(PANELS) == 18


def test_variables_resolve_to_the_simulated_network(store_client: ClickHouseClient, grafana_store: Store) -> None:
    ctx = all_variable_values(store_client, BY_TITLE["netpilot / Egress links"], _ctx(grafana_store, 10))
    assert ctx.variables["pop"] == ["ams1", "fra1"]
    assert ctx.variables["router"] == ["ams1-r1", "ams1-r2", "fra1-r1"]
    assert sorted(ctx.variables["link"]) == sorted(grafana_store.truth_links["link_id"].to_list())
    narrowed = all_variable_values(
        store_client, BY_TITLE["netpilot / Egress links"], replace(ctx, variables={"pop": ["fra1"]})
    )
    assert narrowed.variables["link"] == ["fra1-r1:pni-2", "fra1-r1:transit-1"]


@pytest.mark.parametrize("panel", PANELS, ids=lambda p: p.title)
def test_panel_returns_plausible_rows(panel: PanelQuery, store_client: ClickHouseClient, grafana_store: Store) -> None:
    t = _run(store_client, grafana_store, panel, 10)
    assert t.num_rows > 0, panel.title
    for f in t.schema:
        if pa.types.is_floating(f.type) or pa.types.is_integer(f.type):
            values = [v for v in t.column(f.name).to_pylist() if v is not None]
            assert all(math.isfinite(v) for v in values), (panel.title, f.name)
            if f.name != "headroom":
                assert min(values, default=0) >= 0, (panel.title, f.name)
            if panel.unit == "percentunit" and pa.types.is_floating(f.type) and "bps" not in f.name:
                if "coverage" in panel.title.lower():
                    # No upper bound per window: flows are windowed by when their datagram
                    # arrived (sFlow exporters hold a datagram up to ~1 s), counters by when
                    # they were read, so at a link-down edge a window can hold 1 s of flows
                    # against 0.1 s of counted traffic (coverage x10, and legitimately so).
                    # In steady windows both measure the same bytes.
                    assert 0.9 <= statistics.median(values) <= 1.1, (panel.title, f.name, sorted(values))
                else:
                    assert max(values, default=0) <= 1.5, (panel.title, f.name, max(values))  # > 150 %: nonsense
    if panel.timeseries:
        assert t.schema.names[0] == "time" and len(t.schema.names) == 3, t.schema.names


@pytest.mark.parametrize("interval", INTERVALS)
def test_flow_totals_match_the_simulator_at_every_rollup(
    interval: int, store_client: ClickHouseClient, grafana_store: Store
) -> None:
    truth = {r["link_id"]: r["bytes"] for r in grafana_store.truth_links.iter_rows(named=True)}
    per_link = _run(store_client, grafana_store, _panel("Traffic per egress link"), interval)
    got: dict[str, float] = {}
    for link, bps in zip(_col(per_link, "link_id"), _col(per_link, "bps")):
        got[link] = got.get(link, 0.0) + bps * interval / 8  # bps * bucket seconds = bytes
    assert set(got) == set(truth)
    for link, true_bytes in truth.items():
        # ams1-r1 exports unsampled IPFIX (exact); the others sample 1:100 and 1:1000
        assert got[link] == pytest.approx(true_bytes, rel=0.02), link
    per_pop = _run(store_client, grafana_store, _panel("Traffic per PoP"), interval)
    assert sum(_col(per_pop, "bps")) * interval / 8 == pytest.approx(sum(got.values()), rel=1e-9)
    peer = _run(store_client, grafana_store, _panel("Traffic by peer type"), interval)
    assert set(_col(peer, "peer_type")) == {"pni", "transit", "ix"}
    assert sum(_col(peer, "bps")) * interval / 8 == pytest.approx(sum(got.values()), rel=1e-9)
    top = _run(store_client, grafana_store, _panel("Top destination ASNs"), interval)
    assert sum(_col(top, "total bytes")) <= sum(got.values()) * (1 + 1e-9)


def test_pop_filter_narrows_flow_panels(store_client: ClickHouseClient, grafana_store: Store) -> None:
    t = _run(store_client, grafana_store, _panel("Traffic per PoP"), 10, pop=["fra1"])
    assert set(_col(t, "pop")) == {"fra1"}


def test_egress_panels_show_the_surge_and_the_triggers(store_client: ClickHouseClient, grafana_store: Store) -> None:
    util = _run(store_client, grafana_store, _panel("Utilisation vs capacity"), 10)
    peak = max(u for link, u in zip(_col(util, "link_id"), _col(util, "peak utilisation")) if link == "ams1-r1:pni-1")
    assert peak > 0.9  # the demo's surge pushes the 10G PNI past its 90 % trigger
    near = _run(store_client, grafana_store, _panel("Links nearest to their trigger"), 10)
    assert set(_col(near, "trigger")) <= {0.85, 0.9}
    headroom = _col(near, "headroom")
    assert headroom == sorted(headroom)
    coverage = _run(store_client, grafana_store, _panel("Flow / counter coverage per link"), 10)
    assert 0.8 < sum(_col(coverage, "mean coverage")) / coverage.num_rows < 1.2


def test_autopilot_panels(store_client: ClickHouseClient, grafana_store: Store) -> None:
    timeline = _run(store_client, grafana_store, _panel("Recommendations timeline"), 10)
    assert set(_col(timeline, "action")) == {"ADD", "REFRESH", "WITHDRAW"}
    assert sum(_col(timeline, "recommendations")) == grafana_store.counts["recommendations"]
    table = _run(store_client, grafana_store, _panel("Recommendations"), 10)
    add = [r for r in table.to_pylist() if r["action"] == "ADD"]
    assert add and all(r["from after"] < r["from before"] and r["to after"] > r["to before"] for r in add)
    unresolved = _run(store_client, grafana_store, _panel("Unresolved overloads"), 10)
    assert max(_col(unresolved, "unresolved bps")) > 0
    moved = _run(store_client, grafana_store, _panel("Projected vs actual after a move"), 10)
    assert moved.num_rows >= 1 and all(v is not None for v in _col(moved, "actual to"))
    # the cycles that had something to relieve, and how far from the bound each was
    ratio = _run(store_client, grafana_store, _panel("Moves vs lower bound"), 10)
    cycles = [c for c in grafana_store.messages["cycle_summaries"] if c.moves_lower_bound]
    assert cycles and all(c.moves_ratio == pytest.approx(c.adds / c.moves_lower_bound, abs=1e-4) for c in cycles)
    assert set(_col(ratio, "pop")) == {"ams1"}
    assert max(_col(ratio, "moves / lower bound")) == pytest.approx(max(c.moves_ratio for c in cycles))


def test_applied_overrides_table_shows_installed_and_recent_removals(
    store_client: ClickHouseClient, grafana_store: Store
) -> None:
    panel = _panel("Applied overrides")
    # the store's read-back ends with the WITHDRAW's tombstone: removed, within the range
    [row] = _run(store_client, grafana_store, panel, 10).to_pylist()
    [(key, _none, removed_at)] = [r for r in grafana_store.applied if r[1] is None]
    assert (row["pop"], row["prefix"], row["state"]) == (*key.split("|"), "removed")
    assert row["updated"].timestamp() == removed_at and row["next hop"] == ""
    # a range that ends before the removal hides it; what is installed shows whatever the range
    before = replace(_ctx(grafana_store, 10), to_s=removed_at - 1)
    ctx = all_variable_values(store_client, BY_TITLE[panel.dashboard], before)
    assert run_panel(store_client, panel, ctx).num_rows == 0
    last = [m for _k, m, _t in grafana_store.applied if m is not None][-1]
    store_client.command(
        f"INSERT INTO netpilot.autopilot_applied (pop, prefix, link_id, next_hop, routers, "
        f"local_pref, since, confirmed_at, deleted, version) VALUES ('{last.pop}', "
        f"'192.0.2.0/24', '{last.link_id}', '{last.next_hop}', ['{last.routers[0]}'], 500, "
        f"toDateTime64({last.since}, 3), toDateTime64({last.confirmed_at}, 3), 0, 1000)"
    )
    try:
        rows = run_panel(store_client, panel, ctx).to_pylist()
        assert [(r["prefix"], r["state"], r["link"], r["local pref"]) for r in rows] == [
            ("192.0.2.0/24", "installed", last.link_id, 500)
        ]
    finally:
        store_client.command(
            "ALTER TABLE netpilot.autopilot_applied DELETE WHERE prefix = '192.0.2.0/24' SETTINGS mutations_sync = 1"
        )


@pytest.mark.parametrize(
    "interval, table", [(10, "flows_raw"), (60, "flows_1m"), (300, "flows_5m"), (3600, "flows_1h")]
)
def test_only_the_table_for_the_interval_is_read(
    interval: int, table: str, store_client: ClickHouseClient, grafana_store: Store
) -> None:
    # ClickHouse folds the constant guards: the other three branches read no rows at all
    [(rows,)] = store_client.rows(f"SELECT count() FROM netpilot.{table}")
    panel = _panel("Traffic per egress link")
    ctx = all_variable_values(store_client, BY_TITLE[panel.dashboard], _ctx(grafana_store, interval))
    sql = expand_sql(panel.sql, ctx) + f"\nSETTINGS max_rows_to_read = {rows}"
    assert query_arrow(store_client, sql).num_rows > 0
    if table != "flows_raw":  # and the limit does bite when a query reads more than that
        with pytest.raises(Exception, match="max_rows_to_read"):
            query_arrow(
                store_client, f"SELECT sum(bytes_scaled) FROM netpilot.flows_raw SETTINGS max_rows_to_read = {rows}"
            )
