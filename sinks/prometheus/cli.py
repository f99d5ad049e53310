"""``netpilot sink prometheus run``."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from netpilot.settings import settings_to_run

app = typer.Typer(no_args_is_help=True, help="Prometheus exporter of links and autopilot state.")
ConfigOpt = typer.Option(None, "--config", "-c", help="netpilot YAML (kafka:, sink-prometheus:).")


@app.command()
def run(config: Path = ConfigOpt,
        check: bool = typer.Option(False, "--check", help="validate the configuration and exit"),
        dump: bool = typer.Option(False, "--dump", help="print the effective configuration")) -> None:
    """Consume link utilisation, inventory and autopilot topics; serve them on /metrics."""
    from sinks.prometheus.settings import PrometheusSinkSettings

    settings = settings_to_run(PrometheusSinkSettings, config, check=check, dump=dump)
    if settings is None:
        return
    from netpilot.lifecycle import run as run_services
    from netpilot.obs.logging import setup_logging
    from sinks.prometheus.service import PrometheusSinkService

    setup_logging(settings.log, "sink-prometheus")
    sys.exit(run_services([PrometheusSinkService(settings)]))
