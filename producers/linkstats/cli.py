"""``netpilot snmp poll``."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from netpilot.settings import load_settings

app = typer.Typer(no_args_is_help=True, help="SNMP interface counters -> link-stats.")


@app.callback()
def _group() -> None:
    """SNMP interface counters -> link-stats."""
    # a callback keeps `poll` a subcommand (typer flattens single-command apps)


@app.command()
def poll(
    config: Path = typer.Option(None, "--config", "-c", help="netpilot YAML (kafka:, snmp:)"),
    inventory: Path = typer.Option(None, "--inventory", "-i", help="overrides snmp.inventory"),
    once: bool = typer.Option(False, "--once", help="poll every router once, print, no Kafka"),
    dump: bool = typer.Option(False, "--dump", help="print the effective settings (secrets masked)"),
    check: bool = typer.Option(False, "--check", help="validate the settings and the inventory, and exit"),
) -> None:
    """Poll every inventory link every snmp.interval_s and publish link-stats keyed by PoP."""
    from netpilot.obs.logging import setup_logging
    from producers.linkstats.settings import SnmpPollerSettings

    settings = load_settings(SnmpPollerSettings, config, {"inventory": str(inventory)} if inventory else None)
    if dump:
        import json

        typer.echo(json.dumps(settings.dump(), indent=2, default=str))
        return
    if check:  # as every component's `run --check` (a pod's command is checked in the image's test)
        from producers.inventory.load import load_inventory

        typer.echo(f"ok: {len(load_inventory(settings.inventory).links)} links to poll")
        return
    setup_logging(settings.log, "snmp")
    if once:
        sys.exit(_poll_once(settings))
    from netpilot.lifecycle import serve
    from producers.linkstats.service import SnmpPollerService

    service = SnmpPollerService(settings)
    sys.exit(serve(service, service.registry, settings.metrics))


def _poll_once(settings) -> int:
    import asyncio

    from producers.inventory.load import load_inventory
    from producers.linkstats.service import build_pollers
    from producers.linkstats.snmp import AgentError

    async def go() -> int:
        failed = 0
        for p in build_pollers(settings, load_inventory(settings.inventory)):
            try:
                result = await p.poll()
            except AgentError as exc:
                typer.echo(f"{p.pop} {p.router}: FAILED {exc}")
                failed += 1
                continue
            finally:
                p.client.close()
            for s in result.stats:
                typer.echo(
                    f"{s.pop} {s.router} {s.link_id} ifIndex={s.if_index} {s.if_name} "
                    f"up={s.oper_up} out={s.out_octets} in={s.in_octets} speed={s.speed_bps}"
                )
            for link in result.unresolved:
                typer.echo(f"{p.pop} {p.router} {link}: interface not found on the agent")
        return 1 if failed else 0

    return asyncio.run(go())
