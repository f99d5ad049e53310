"""``netpilot inventory check|publish``."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from netpilot.settings import load_settings

app = typer.Typer(no_args_is_help=True, help="Link inventory: validate and publish.")
ConfigOpt = typer.Option(None, "--config", "-c", help="netpilot YAML configuration (kafka:, inventory:).")


@app.command()
def check(file: Path = typer.Argument(..., help="inventory YAML")) -> None:
    """Validate the inventory; print every problem as file:line: path: what. Exit 2 if invalid."""
    from producers.inventory.load import load_inventory

    inv = load_inventory(file)  # InventoryError is a ConfigError: printed, exit status 2
    pops = {link.pop for link in inv.links}
    typer.echo(f"{file}: OK: {len(pops)} PoPs, {len(inv.routers)} SNMP-polled routers, {len(inv.links)} links")


@app.command()
def publish(
    file: Path = typer.Argument(None, help="inventory YAML (default: inventory.file)"),
    config: Path = ConfigOpt,
    watch: bool = typer.Option(False, "--watch", help="keep running; re-publish on change"),
) -> None:
    """Publish the inventory to the compacted topic: changes upserted, deleted links tombstoned."""
    from netpilot.kafka.producer import KafkaProducer, ProducerOptions
    from netpilot.obs.logging import setup_logging
    from producers.inventory.load import load_inventory
    from producers.inventory.publish import publish_inventory
    from producers.inventory.settings import InventorySettings

    overrides = {"file": str(file)} if file is not None else None
    settings = load_settings(InventorySettings, config, overrides)
    setup_logging(settings.log, "inventory")
    if watch:
        from netpilot.lifecycle import run
        from netpilot.obs.http import MetricsServer
        from producers.inventory.service import InventoryWatcher

        watcher = InventoryWatcher(settings)
        http = MetricsServer(watcher.registry, settings.metrics.listen, watcher.health)
        if settings.metrics.enabled:
            http.start()
        try:
            code = run([watcher])
        finally:
            if settings.metrics.enabled:
                http.stop()
        sys.exit(code)
    inv = load_inventory(settings.file)
    producer = KafkaProducer(settings.kafka, ProducerOptions(linger_ms=5))
    report = publish_inventory(inv, settings.kafka, producer)
    typer.echo(
        f"published {len(report.upserted)} changed links, {len(report.tombstoned)} "
        f"tombstones, {report.unchanged} unchanged"
    )
