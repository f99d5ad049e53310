"""The per-component service dashboard: one dashboard for any netpilot component, built only on
the service contract (netpilot/obs/service.py) that every component exports.

Pick the component (and, optionally, some of its instances): the panels show work done per
second, errors by reason, batch duration quantiles, backlog, lag and the Kafka clients its
process had to replace. A panel a component has
no series for (the inventory publisher has no batches) says "No data", by design.
"""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as dm

from grafana.model import PROMETHEUS, PanelBuilder, dashboard, prom_queries, query_variable, stat, timeseries
from netpilot.obs.service import BACKLOG, CLIENT_RECREATIONS, DURATION, ERRORS, LAG, PROCESSED

RATE = "[$__rate_interval]"
SELECTOR = '{component="$component", instance=~"$instance"}'
"""Every query's selector: the dashboard's two variables."""

VAR_COMPONENT = f"label_values({PROCESSED}, component)"
VAR_INSTANCE = f'label_values({PROCESSED}{{component="$component"}}, instance)'


def _quantile(q: float) -> tuple[str, str]:
    expr = f"histogram_quantile({q}, sum by (le) (rate({DURATION}_bucket{SELECTOR}{RATE})))"
    return expr, f"p{round(q * 100)}"


SERVICE_QUERIES: list[tuple[str, str, str, list[tuple[str, str]]]] = [
    # (title, unit, description, [(expr, legend)])
    (
        "Processed per second",
        "short",
        "Work done per second, by kind of item (flows, messages, polls, cycles ... as the component counts them).",
        [(f"sum by (item) (rate({PROCESSED}{SELECTOR}{RATE}))", "{{item}}")],
    ),
    (
        "Errors per second by reason",
        "short",
        "Items refused, dropped or failed per second. Each reason exists at 0 from the start, so "
        "a flat line at 0 means none, not no data.",
        [(f"sum by (reason) (rate({ERRORS}{SELECTOR}{RATE}))", "{{reason}}")],
    ),
    (
        "Batch duration",
        "s",
        "Quantiles of one unit of batch work (a decode pass, an insert, a planner cycle, a poll). "
        "No data: the component has no batches (inventory, streams, bmp).",
        [_quantile(0.5), _quantile(0.95), _quantile(0.99)],
    ),
    (
        "Backlog",
        "short",
        "Items waiting: Kafka messages not yet processed (consumer lag), datagrams queued for decoding, "
        "withdrawals deferred while a BMP session syncs. "
        "No data: the component keeps no queue.",
        [(f"sum by (instance) ({BACKLOG}{SELECTOR})", "{{instance}}")],
    ),
    (
        "Lag behind the wall clock",
        "s",
        "How far behind real time the output is (the streams watermark of the PoP furthest behind). "
        "No data: the component has no event-time clock.",
        [(f"max by (instance) ({LAG}{SELECTOR})", "{{instance}}")],
    ),
    (
        "Kafka clients replaced",
        "short",
        "Kafka clients the process replaced because librdkafka could not recover them on its own "
        "(docs/recovery.md): a static consumer fenced after a broker restart, a consumer out of its "
        "group too long, a producer left with no broker. Now and then during broker restarts: the "
        "workaround at work. Steadily: look at the cluster. Always 0 for streams and autopilot "
        "(their Kafka clients are aiokafka's).",
        [(f"sum by (client, reason) (increase({CLIENT_RECREATIONS}{SELECTOR}{RATE}))", "{{client}} {{reason}}")],
    ),
]

INSTANCES = f"count(count by (instance) ({PROCESSED}{SELECTOR}))"
ERRORS_TOTAL = f"sum(rate({ERRORS}{SELECTOR}{RATE}))"
GRID = ((0, 4, 12, 8), (12, 4, 12, 8), (0, 12, 12, 8), (12, 12, 6, 8), (18, 12, 6, 8), (0, 20, 24, 6))
"""Where the SERVICE_QUERIES panels go, under the two stats."""


def service_dashboard() -> dm.Dashboard:
    panels: list[PanelBuilder] = [
        stat(
            "Instances",
            "Instances of the component that Prometheus scrapes now.",
            prom_queries([(INSTANCES, "instances")]),
            "short",
            (0, 0, 12, 4),
        ),
        stat(
            "Errors per second",
            "All reasons together; the panel below splits them.",
            prom_queries([(ERRORS_TOTAL, "errors/s")]),
            "short",
            (12, 0, 12, 4),
            thresholds=[(None, "green"), (0.001, "red")],
        ),
    ]
    for (title, unit, desc, exprs), grid in zip(SERVICE_QUERIES, GRID, strict=True):
        panels.append(timeseries(title, desc, prom_queries(exprs), unit, grid))
    return dashboard(
        "netpilot-service",
        "netpilot / Service",
        "Any netpilot component through the service contract: rate, errors by reason, batch duration, backlog, lag, "
        "Kafka clients replaced.",
        panels,
        [
            query_variable("component", "Component", VAR_COMPONENT, PROMETHEUS, multi=False),
            query_variable("instance", "Instance", VAR_INSTANCE, PROMETHEUS).all_value(".*"),
        ],
        time_from="now-1h",
        tags=("netpilot", "service"),
    )
