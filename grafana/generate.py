"""The netpilot dashboards as code; ``netpilot grafana render`` writes grafana/dashboards/.

The four data dashboards are here, built with grafana-foundation-sdk through the helpers of
grafana/model.py; the per-component Service dashboard is grafana/service.py. The JSON files
are committed (Grafana mounts them through provisioning/dashboards) and a test fails when
they differ from a fresh render, so edit the Python, not the JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm

from grafana import queries as q
from grafana.model import (
    Json,
    Query,
    ch_query,
    constant_variable,
    dashboard,
    heatmap,
    prom_queries,
    prom_query,
    query_variable,
    table,
    timeseries,
)
from grafana.service import service_dashboard
from streams.autopilot.policy import Policy

DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboards"
DATABASE = "netpilot"


def _variables(with_link: bool = True) -> list[Any]:
    out = [
        constant_variable("db", DATABASE),
        query_variable("pop", "PoP", q.VAR_POP),
        query_variable("router", "Router", q.VAR_ROUTER),
    ]
    if with_link:
        out.append(query_variable("link", "Link", q.VAR_LINK))
    return out


def _ts(sql: str) -> list[Query]:
    return [ch_query(sql, timeseries=True)]


def _table(sql: str) -> list[Query]:
    return [ch_query(sql, timeseries=False)]


def network_overview() -> dm.Dashboard:
    panels = [
        timeseries(
            "Traffic per PoP",
            "Egress bits/s per PoP, sampling-corrected (rollups at coarse intervals, raw flows when zoomed in).",
            _ts(q.TRAFFIC_PER_POP),
            "bps",
            (0, 0, 12, 8),
        ),
        timeseries(
            "Traffic per egress link",
            "Bits/s per egress link from flows, sampling-corrected.",
            _ts(q.TRAFFIC_PER_LINK),
            "bps",
            (12, 0, 12, 8),
        ),
        table(
            "Top destination ASNs",
            "Average bits/s over the range per destination AS.",
            _table(q.TOP_DST_AS),
            "bps",
            (0, 8, 8, 10),
        ),
        table(
            "Top destination prefixes",
            "Raw flows, last 6 h of the range at most (rollups do not keep prefixes).",
            _table(q.TOP_DST_PREFIXES),
            "bps",
            (8, 8, 8, 10),
        ),
        timeseries(
            "Traffic by peer type",
            "Bits/s per peer type of the egress link (transit, PNI, IX ...).",
            _ts(q.TRAFFIC_BY_PEER_TYPE),
            "bps",
            (16, 8, 8, 10),
            stack=True,
        ),
        timeseries(
            "Flow / counter coverage per link",
            "Flow-derived bits/s divided by SNMP/sFlow counter bits/s: 1 = flows explain all the traffic.",
            _ts(q.COVERAGE),
            "percentunit",
            (0, 18, 24, 8),
            thresholds=[(None, "red"), (0.8, "yellow"), (0.95, "green")],
        ),
    ]
    return dashboard(
        "netpilot-overview",
        "netpilot / Network overview",
        "Traffic per PoP and link, top destinations, peer types, coverage.",
        panels,
        _variables(),
    )


def _util_thresholds() -> list[tuple[float | None, str]]:
    p = Policy()
    his = sorted({t.hi for t in p.thresholds.values()} | {p.default_hi})
    return [
        (None, "green"),
        (min(his) - p.target_gap, "yellow"),
        *[(h, "red") for h in his[:1]],
        *[(h, "dark-red") for h in his[1:]],
    ]


def egress_links() -> dm.Dashboard:
    triggers = ", ".join(f"{k} {t.hi:.0%}" for k, t in sorted(Policy().thresholds.items()))
    panels = [
        timeseries(
            "Utilisation vs capacity",
            f"Counter bits/s / capacity per link. Lines: autopilot target and triggers ({triggers}).",
            _ts(q.UTILISATION),
            "percentunit",
            (0, 0, 24, 9),
            thresholds=_util_thresholds(),
            draw_thresholds=True,
        ),
        heatmap(
            "Links over time",
            "Utilisation per link (rows) and time.",
            _ts(q.HEATMAP),
            "percentunit",
            (0, 9, 24, 9),
        ),
        table(
            "p95 utilisation per link",
            "95th percentile over the range.",
            _table(q.P95),
            "percentunit",
            (0, 18, 12, 9),
        ),
        table(
            "Links nearest to their trigger",
            "Latest utilisation vs the autopilot trigger of the link's peer type; smallest headroom first.",
            _table(q.NEAREST_TRIGGER),
            "percentunit",
            (12, 18, 12, 9),
        ),
        timeseries(
            "Live utilisation (Prometheus exporter)",
            "The Prometheus sink's view: latest utilisation per link, what alerting rules see.",
            [
                prom_query(
                    'max by (link_id) (netpilot_link_utilisation_ratio{pop=~"$pop", link_id=~"$link"})',
                    "{{link_id}}",
                    "A",
                )
            ],
            "percentunit",
            (0, 27, 24, 8),
            thresholds=_util_thresholds(),
            draw_thresholds=True,
        ),
    ]
    return dashboard(
        "netpilot-egress",
        "netpilot / Egress links",
        "Utilisation against capacity and the autopilot thresholds.",
        panels,
        _variables(),
    )


def autopilot() -> dm.Dashboard:
    panels = [
        timeseries(
            "Recommendations timeline",
            "Recommendations per interval by action (ADD / REFRESH / WITHDRAW).",
            _ts(q.REC_TIMELINE),
            "short",
            (0, 0, 12, 8),
            stack=True,
        ),
        timeseries(
            "Active overrides",
            "Overrides in force per PoP (cycle summaries).",
            _ts(q.ACTIVE_OVERRIDES),
            "short",
            (12, 0, 6, 8),
        ),
        timeseries(
            "Detoured traffic",
            "Bits/s moved off their best path by overrides.",
            _ts(q.DETOURED),
            "bps",
            (18, 0, 6, 8),
        ),
        table(
            "Recommendations",
            "Latest first: action, prefix, from/to link, projected utilisation before and after, reason.",
            _table(q.REC_TABLE),
            "short",
            (0, 8, 24, 10),
        ),
        timeseries(
            "Unresolved overloads",
            "Bits/s above trigger the planner could not move, per link.",
            _ts(q.UNRESOLVED),
            "bps",
            (0, 18, 12, 8),
        ),
        table(
            "Projected vs actual after a move",
            "ADD recommendations: the planner's projected utilisation vs the measured mean in the 5 minutes after.",
            _table(q.PROJECTED_VS_ACTUAL),
            "percentunit",
            (12, 18, 12, 8),
        ),
        timeseries(
            "Live detoured traffic (Prometheus exporter)",
            "Traffic moved off its best path after the last cycle, per PoP (the Prometheus sink's gauges).",
            [prom_query('sum by (pop) (netpilot_autopilot_detoured_bits_per_second{pop=~"$pop"})', "{{pop}}", "A")],
            "bps",
            (0, 26, 12, 8),
        ),
        timeseries(
            "Live overrides (Prometheus exporter)",
            "Overrides in force and valid recommendations after the last cycle, per PoP.",
            [
                prom_query('sum by (pop) (netpilot_autopilot_active_overrides{pop=~"$pop"})', "overrides {{pop}}", "A"),
                prom_query(
                    'sum by (pop) (netpilot_autopilot_recommendations{pop=~"$pop"})',
                    "valid recommendations {{pop}}",
                    "B",
                ),
            ],
            "short",
            (12, 26, 12, 8),
        ),
        timeseries(
            "Projection error per link (Prometheus exporter)",
            "Actual utilisation "
            "minus what the planner expected (with its overrides in suggest mode). Beyond ±5 % for "
            "5 minutes a link is misprojected: the model is wrong or the overrides are not applied.",
            [
                prom_query(
                    'max by (pop, link_id) (netpilot_autopilot_projection_error_ratio{pop=~"$pop"})', "{{link_id}}", "A"
                ),
                prom_query(
                    'sum by (pop) (netpilot_autopilot_link_misprojected{pop=~"$pop"})',
                    "misprojected links {{pop}}",
                    "B",
                ),
            ],
            "percentunit",
            (0, 34, 24, 8),
        ),
        timeseries(
            "Applied vs recommended overrides",
            "Overrides the PoP's routers hold "
            "(read back from their RIBs by the injector) against valid recommendations, per PoP. "
            "A gap that stays: suggestions not approved, or the injector is not applying them.",
            [
                prom_query('sum by (pop) (netpilot_autopilot_applied_overrides{pop=~"$pop"})', "applied {{pop}}", "A"),
                prom_query(
                    'sum by (pop) (netpilot_autopilot_recommendations{pop=~"$pop"})', "recommended {{pop}}", "B"
                ),
            ],
            "short",
            (0, 42, 12, 8),
        ),
        table(
            "Applied overrides",
            "What the routers hold now (latest read-back per PoP and prefix), and overrides removed within the range.",
            _table(q.APPLIED_TABLE),
            "short",
            (12, 42, 12, 8),
        ),
        timeseries(
            "Moves vs lower bound",
            "ADDs per cycle over the fewest moves that could relieve its overloads (cycle summaries). "
            "1 is at the bound; above 1.2 the planner moved notably more prefixes than needed.",
            _ts(q.MOVES_VS_BOUND),
            "short",
            (0, 50, 12, 8),
        ),
    ]
    return dashboard(
        "netpilot-autopilot",
        "netpilot / Autopilot",
        "What the egress autopilot recommends and whether it worked.",
        panels,
        _variables(with_link=False),
    )


RATE = "[$__rate_interval]"

PIPELINE_QUERIES: list[tuple[str, str, str, list[tuple[str, str]]]] = [
    # (title, unit, description, [(expr, legend)])
    (
        "Flows/s in and out",
        "short",
        "Flows decoded by the collector, aggregated by streams, rows stored by the ClickHouse sink.",
        [
            (f"sum by (protocol) (rate(netpilot_collector_flows_total{RATE}))", "collector {{protocol}}"),
            (f"sum(rate(netpilot_streams_flows_total{RATE}))", "streams in"),
            (f"sum by (table) (rate(netpilot_sink_clickhouse_rows_total{RATE}))", "clickhouse {{table}}"),
        ],
    ),
    (
        "Drops by reason",
        "short",
        "Items dropped per second, by component and reason.",
        [
            (f"sum by (reason) (rate(netpilot_collector_flows_dropped_total{RATE}))", "collector {{reason}}"),
            (f"sum(rate(netpilot_collector_queue_dropped_datagrams_total{RATE}))", "collector queue full"),
            # labelled counters with no child yet have no series: show 0, not "No data"
            (f"sum by (reason) (rate(netpilot_streams_flows_dropped_total{RATE})) or vector(0)", "streams {{reason}}"),
            (
                f"sum by (reason) (rate(netpilot_sink_clickhouse_dead_letters_total{RATE})) or vector(0)",
                "sink dead letters {{reason}}",
            ),
        ],
    ),
    (
        "Consumer lag",
        "short",
        "Messages the ClickHouse sink has not committed; streams watermark lag (s); "
        "PoPs with no flows for idle_after_s (their windows close on the wall clock, coverage 0).",
        [
            ("sum by (topic) (netpilot_sink_clickhouse_consumer_lag_messages)", "sink {{topic}}"),
            ("max by (pop) (netpilot_streams_watermark_lag_seconds)", "streams watermark lag {{pop}} (s)"),
            ("sum(netpilot_streams_idle_pops)", "idle PoPs (no flows)"),
        ],
    ),
    (
        "Batch latency (p95)",
        "s",
        "95th percentile of the collector's decode pass and the sink's insert.",
        [
            (
                f"histogram_quantile(0.95, sum by (le) (rate(netpilot_collector_decode_seconds_bucket{RATE})))",
                "collector decode pass",
            ),
            (
                f"histogram_quantile(0.95, sum by (le, table) "
                f"(rate(netpilot_sink_clickhouse_insert_duration_seconds_bucket{RATE})))",
                "clickhouse insert {{table}}",
            ),
        ],
    ),
    (
        "Templates",
        "short",
        "NetFlow v9 / IPFIX templates cached by the collector.",
        [("sum(netpilot_collector_templates)", "templates")],
    ),
    (
        "Kafka and ClickHouse errors",
        "short",
        "Kafka delivery errors and ClickHouse failures per second; ClickHouse up (1/0).",
        [
            (f"sum(rate(netpilot_collector_delivery_errors_total{RATE}))", "collector kafka delivery"),
            (
                f"sum by (reason) (rate(netpilot_sink_clickhouse_errors_total{RATE})) or vector(0)",
                "clickhouse {{reason}}",
            ),
            ("min(netpilot_sink_clickhouse_clickhouse_up)", "clickhouse up"),
        ],
    ),
]


def pipeline_health() -> dm.Dashboard:
    panels = [
        timeseries(title, desc, prom_queries(exprs), unit, ((i % 2) * 12, (i // 2) * 8, 12, 8))
        for i, (title, unit, desc, exprs) in enumerate(PIPELINE_QUERIES)
    ]
    return dashboard(
        "netpilot-pipeline",
        "netpilot / Pipeline health",
        "Flows in and out of each component, drops, lag, latency, errors (Prometheus).",
        panels,
        [],
        time_from="now-1h",
    )


DASHBOARDS: dict[str, Callable[[], dm.Dashboard]] = {
    "network-overview": network_overview,
    "egress-links": egress_links,
    "autopilot": autopilot,
    "pipeline-health": pipeline_health,
    "service": service_dashboard,
}


def to_json(d: dm.Dashboard) -> Json:
    """The SDK model as the plain JSON Grafana reads (the SDK's encoder drops unset fields)."""
    out: Json = json.loads(json.dumps(d, cls=JSONEncoder))
    return out


def render() -> dict[str, str]:
    """File name -> JSON text, deterministic (sorted keys, 2-space indent, final newline)."""
    return {
        f"{name}.json": json.dumps(build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"
        for name, build in DASHBOARDS.items()
    }


def write(out_dir: Path = DASHBOARD_DIR) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render().items():
        path = out_dir / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            written.append(path)
    return written


def stale(out_dir: Path = DASHBOARD_DIR) -> list[str]:
    """Names whose committed JSON differs from a fresh render (missing counts as stale)."""
    return [
        name for name, text in render().items() if not (out_dir / name).exists() or (out_dir / name).read_text() != text
    ]


def load_all(out_dir: Path = DASHBOARD_DIR) -> dict[str, Json]:
    return {p.name: json.loads(p.read_text()) for p in sorted(out_dir.glob("*.json"))}
