"""``netpilot sink clickhouse run|migrate|query``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from netpilot.runcmd import add_run_command
from netpilot.settings import load_settings

if TYPE_CHECKING:
    from sinks.clickhouse.settings import ClickHouseSinkSettings

app = typer.Typer(no_args_is_help=True, help="ClickHouse sink (embedded chDB by default).")
CONFIG_HELP = "netpilot YAML (kafka:, sink-clickhouse:)."
ConfigOpt = typer.Option(None, "--config", "-c", help=CONFIG_HELP)


def _settings_class() -> type[ClickHouseSinkSettings]:
    from sinks.clickhouse.settings import ClickHouseSinkSettings

    return ClickHouseSinkSettings


def _settings(config: Path | None) -> ClickHouseSinkSettings:
    return load_settings(_settings_class(), config)


def _start(settings: ClickHouseSinkSettings) -> int:
    from netpilot.lifecycle import run as run_services
    from netpilot.obs.logging import setup_logging
    from sinks.clickhouse.service import ClickHouseSinkService

    setup_logging(settings.log, "sink-clickhouse")
    return run_services([ClickHouseSinkService(settings)])


add_run_command(
    app,
    _settings_class,
    _start,
    doc="Consume the sink's topics into ClickHouse until SIGTERM/SIGINT.",
    config_help=CONFIG_HELP,
    check_help="validate the configuration and exit",
    dump_help="print the effective configuration",
)


@app.command()
def migrate(
    config: Path = ConfigOpt, dry_run: bool = typer.Option(False, "--dry-run", help="only list the needed steps")
) -> None:
    """Create or upgrade the schema: apply each needed step; a second run changes nothing."""
    from sinks.clickhouse.client import ClickHouseClient
    from sinks.clickhouse.migrations import migrate as do_migrate

    s = _settings(config)
    client = ClickHouseClient(s.dsn.get_secret_value())
    try:
        report = do_migrate(client, s.database, s.retention, s.dedup_window, dry_run=dry_run)
    finally:
        client.close()
    verb = "needed " if dry_run else "applied"
    for step in report.applied:
        typer.echo(f"{verb} {step}")
    typer.echo(f"{len(report.applied)} steps {verb.strip()}, {len(report.skipped)} already in place")


@app.command()
def query(
    sql: str = typer.Argument(..., help="one read-only statement"),
    config: Path = ConfigOpt,
    fmt: str = typer.Option("TabSeparatedWithNames", "--format", "-f"),
) -> None:
    """Run a query on the sink's database. With chDB, run it while the sink is stopped
    (one process per data path) or use the running sink's query_listen endpoint."""
    from sinks.clickhouse.client import ClickHouseClient
    from sinks.clickhouse.query_http import is_read_only

    if not is_read_only(sql):
        typer.echo("error: only one read-only statement (SELECT/WITH/SHOW/DESCRIBE)", err=True)
        sys.exit(2)
    s = _settings(config)
    client = ClickHouseClient(s.dsn.get_secret_value())
    try:
        sys.stdout.buffer.write(client.raw(sql, fmt=fmt))
    finally:
        client.close()
