"""``netpilot sink prometheus run``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from netpilot.runcmd import add_run_command

if TYPE_CHECKING:
    from sinks.prometheus.settings import PrometheusSinkSettings

app = typer.Typer(no_args_is_help=True, help="Prometheus exporter of links and autopilot state.")
CONFIG_HELP = "netpilot YAML (kafka:, sink-prometheus:)."


def _settings_class() -> type[PrometheusSinkSettings]:
    from sinks.prometheus.settings import PrometheusSinkSettings

    return PrometheusSinkSettings


def _start(settings: PrometheusSinkSettings) -> int:
    from netpilot.lifecycle import run as run_services
    from netpilot.obs.logging import setup_logging
    from sinks.prometheus.service import PrometheusSinkService

    setup_logging(settings.log, "sink-prometheus")
    return run_services([PrometheusSinkService(settings)])


add_run_command(
    app,
    _settings_class,
    _start,
    doc="Consume link utilisation, inventory and autopilot topics; serve them on /metrics.",
    config_help=CONFIG_HELP,
    check_help="validate the configuration and exit",
    dump_help="print the effective configuration",
)
