"""Time every ClickHouse dashboard panel at the four flow-table intervals (raw, 1m, 5m, 1h).

    .venv/bin/python bench/bench_grafana_panels.py --dsn chdb:///path/to/store [--repeat 3]

The range is the span of flows_raw in the store (from the hour before its first row), the
variables are on "All". Prints the median milliseconds per panel and interval and the
rows returned; flow panels read flows_raw at 10 s, flows_1m at 60 s, flows_5m at 300 s and
flows_1h at 3600 s (see grafana/queries.py).
"""

from __future__ import annotations

import argparse
import statistics
import time

from grafana import generate
from grafana.macros import QueryContext
from grafana.panels import all_variable_values, clickhouse_panels, run_panel
from sinks.clickhouse.client import ClickHouseClient

INTERVALS = (10, 60, 300, 3600)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    client = ClickHouseClient(args.dsn)
    [(lo, hi, rows)] = client.rows(
        "SELECT toUnixTimestamp(min(time_received)), toUnixTimestamp(max(time_received)), "
        "count() FROM netpilot.flows_raw"
    )
    dashboards = generate.load_all()
    by_title = {d["title"]: d for d in dashboards.values()}
    print(f"store: {rows} raw flows over {hi - lo} s; median of {args.repeat} runs, ms (rows)")
    print(f"{'panel':42s}" + "".join(f"{f'{i} s':>16s}" for i in INTERVALS))
    for p in clickhouse_panels(dashboards):
        cells = []
        for interval in INTERVALS:
            ctx = all_variable_values(client, by_title[p.dashboard], QueryContext(lo // 3600 * 3600, hi + 60, interval))
            times, n = [], 0
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                n = run_panel(client, p, ctx).num_rows
                times.append((time.perf_counter() - t0) * 1000)
            cells.append(f"{statistics.median(times):9.1f} ({n:4d})")
        print(f"{p.title[:42]:42s}" + "".join(f"{c:>16s}" for c in cells))
    client.close()


if __name__ == "__main__":
    main()
