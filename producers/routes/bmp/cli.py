"""``netpilot routes bmp run [--config FILE] [--check] [--dump]``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from netpilot.runcmd import add_run_command

if TYPE_CHECKING:
    from producers.routes.bmp.settings import BmpSettings

app = typer.Typer(no_args_is_help=True, help="BMP collector: the routers' Adj-RIB-In -> the routes topic.")
CONFIG_HELP = "netpilot YAML (kafka:, bmp:)."


@app.callback()
def _group() -> None:
    """BMP collector: the routers' Adj-RIB-In -> the routes topic."""
    # a callback keeps `run` a subcommand (typer flattens single-command apps)


def _settings_class() -> type[BmpSettings]:
    from producers.routes.bmp.settings import BmpSettings

    return BmpSettings


def _check(settings: BmpSettings) -> str:
    from producers.inventory.load import load_inventory
    from producers.routes.bmp.linkmap import LinkMap

    inventory = load_inventory(settings.inventory)
    linkmap = LinkMap.build(inventory.links, settings.routers)
    peers = sum(len(p) for p in linkmap.by_router.values())
    return (
        f"ok: {len(inventory.links)} links on {len(linkmap.routers)} routers, {peers} BGP peer addresses "
        f"(next_hops); listening on {settings.listen}, {settings.policy}-policy Adj-RIB-In"
    )


def _start(settings: BmpSettings) -> int:
    from netpilot.lifecycle import serve
    from netpilot.obs.logging import setup_logging
    from producers.routes.bmp.service import BmpCollectorService

    setup_logging(settings.log, "bmp")
    service = BmpCollectorService(settings)
    return serve(service, service.registry, settings.metrics)


add_run_command(
    app,
    _settings_class,
    _start,
    doc="Listen for BMP from the routers; publish every mapped peer's routes, withdrawals as tombstones.",
    check_report=_check,
    config_help=CONFIG_HELP,
)
