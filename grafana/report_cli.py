"""``netpilot report --since 1h [--dsn chdb:///path] [--out DIR]``."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from netpilot.errors import ConfigError

app = typer.Typer(add_completion=False)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if not m:
        raise ConfigError(f"--since {text!r}: use a number and a unit s/m/h/d/w, e.g. 1h or 90m")
    return float(m.group(1)) * _UNITS[m.group(2)]


@app.command()
def report(
    since: str = typer.Option("1h", "--since", help="Time range ending now: 30m, 1h, 7d ..."),
    dsn: str = typer.Option(None, "--dsn", help="ClickHouse DSN (default: the ClickHouse sink's)."),
    out: Path = typer.Option(Path("out/report"), "--out", help="Folder for the PNGs and index.html."),
    pop: list[str] = typer.Option(None, "--pop", help="Only these PoPs (repeatable; default all)."),
    config: Path = typer.Option(None, "--config", "-c", help="netpilot YAML (sink-clickhouse: dsn, database)."),
) -> None:
    """Render the dashboards' ClickHouse panels to PNG charts and an HTML page."""
    from grafana.report import build_report
    from netpilot.settings import load_settings
    from sinks.clickhouse.client import ClickHouseClient
    from sinks.clickhouse.settings import ClickHouseSinkSettings

    seconds = parse_since(since)
    settings = load_settings(ClickHouseSinkSettings, config)
    client = ClickHouseClient(dsn or settings.dsn.get_secret_value())
    try:
        results = build_report(client, out, seconds, narrow={"pop": pop} if pop else None, database=settings.database)
    finally:
        client.close()
    failed = [r for r in results if r.error]
    typer.echo(f"{out / 'index.html'}: {len(results) - len(failed)} panels rendered, {len(failed)} failed")
    for r in failed:
        typer.echo(f"  {r.dashboard} / {r.title}: {r.error[:300] if r.error else ''}", err=True)
    if failed:
        raise typer.Exit(1)
