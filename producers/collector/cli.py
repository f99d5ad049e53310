"""``netpilot collector run|check``."""

from __future__ import annotations

from pathlib import Path

import typer

from netpilot.runcmd import add_run_command
from netpilot.settings import load_settings
from producers.collector.settings import CollectorSettings

app = typer.Typer(no_args_is_help=True, help="Flow collector: NetFlow v5/v9, IPFIX, sFlow v5 -> flows topic.")

ConfigOpt = typer.Option(None, "--config", "-c", help="YAML configuration file.")


def _check(settings: CollectorSettings) -> str:
    from producers.collector.inventory import load_inventory

    inv = load_inventory(settings.inventory_file, settings.routes_file)
    routers = inv.routers()
    links = sum(len(r.links) for _, r in routers)
    accepts = routers or settings.allowed_exporters or settings.accept_unknown_exporters
    note = "" if accepts else " (WARNING: no exporters allowed: every datagram would be denied)"
    return f"ok: {len(inv.pops)} pops, {len(routers)} exporters, {links} links, {len(inv.routes)} routes{note}"


def _start(settings: CollectorSettings) -> int:
    from netpilot import lifecycle
    from netpilot.obs.logging import setup_logging
    from producers.collector.service import CollectorService

    setup_logging(settings.log, component="collector")
    service = CollectorService(settings)
    return lifecycle.serve(service, service.registry, settings.metrics)


add_run_command(
    app,
    lambda: CollectorSettings,
    _start,
    check_report=_check,
    doc="Receive, decode, enrich and publish flows until SIGINT/SIGTERM.",
    check_help="Validate configuration and inventory, then exit.",
)


@app.command("check")
def check_cmd(config: Path = ConfigOpt) -> None:
    """Validate the configuration and the inventory/routes files."""
    typer.echo(_check(load_settings(CollectorSettings, config)))
