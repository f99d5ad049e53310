"""``netpilot sink clickhouse ...`` and ``netpilot sink prometheus ...``."""

from __future__ import annotations

import typer

from sinks.clickhouse.cli import app as clickhouse_app
from sinks.prometheus.cli import app as prometheus_app

app = typer.Typer(no_args_is_help=True, help="Sinks: ClickHouse and Prometheus.")
app.add_typer(clickhouse_app, name="clickhouse")
app.add_typer(prometheus_app, name="prometheus")
