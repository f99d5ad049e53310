"""``netpilot collector run|check``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

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


@app.command()
def run(config: Path = ConfigOpt,
        check: bool = typer.Option(False, "--check", help="Validate configuration and inventory, then exit."),
        dump: bool = typer.Option(False, "--dump", help="Print the effective configuration and exit.")) -> None:
    """Receive, decode, enrich and publish flows until SIGINT/SIGTERM."""
    settings = load_settings(CollectorSettings, config)
    if dump:
        typer.echo(json.dumps(settings.dump(), indent=2, default=str))
        return
    if check:
        typer.echo(_check(settings))
        return
    from netpilot import lifecycle
    from netpilot.obs.logging import setup_logging
    from producers.collector.service import CollectorService

    setup_logging(settings.log, component="collector")
    service = CollectorService(settings)
    sys.exit(lifecycle.serve(service, service.registry, settings.metrics))


@app.command("check")
def check_cmd(config: Path = ConfigOpt) -> None:
    """Validate the configuration and the inventory/routes files."""
    typer.echo(_check(load_settings(CollectorSettings, config)))
