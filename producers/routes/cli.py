"""``netpilot routes load`` and ``netpilot routes bmp run``."""

from __future__ import annotations

from pathlib import Path

import typer

from netpilot.settings import load_settings
from producers.routes.bmp.cli import app as bmp_app  # light: it imports the collector lazily

app = typer.Typer(no_args_is_help=True, help="Routes per PoP and link -> the routes topic.")


@app.callback()
def _group() -> None:
    """Routes per PoP and link -> the routes topic."""
    # a callback keeps `load` a subcommand (typer flattens single-command apps)


app.add_typer(bmp_app, name="bmp")  # `netpilot routes bmp run`: the BMP collector


@app.command()
def load(
    source: Path = typer.Argument(..., help="routes .yaml/.csv, or an MRT RIB dump with --mrt"),
    mrt: bool = typer.Option(False, "--mrt", help="SOURCE is an MRT TABLE_DUMP_V2 file"),
    inventory: Path = typer.Option(
        None, "--inventory", "-i", help="MRT: map BGP peers to links by the links' next_hops"
    ),
    peer: list[str] = typer.Option([], "--peer", help="MRT: PEER_IP=POP/LINK (repeatable)"),
    pop: list[str] = typer.Option(
        [], "--pop", help="PoPs this load is authoritative for (default: those in the source)"
    ),
    config: Path = typer.Option(None, "--config", "-c", help="netpilot YAML (kafka:)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="validate and count; no Kafka"),
) -> None:
    """Load routes and publish them; routes no longer in the source are withdrawn (tombstones)."""
    from netpilot.errors import ConfigError
    from netpilot.kafka.producer import KafkaProducer, ProducerOptions
    from producers.routes.publish import desired_records, publish_routes
    from producers.routes.settings import RoutesSettings

    if mrt:
        from producers.routes.mrt import LinkRef, MrtReport, peers_from_inventory, read_mrt

        peers: dict[str, LinkRef] = {}
        if inventory is not None:
            from producers.inventory.load import load_inventory

            peers.update(peers_from_inventory(load_inventory(inventory).links))
        for p in peer:
            ip, _, target = p.partition("=")
            pop_name, _, link = target.partition("/")
            if not (ip and pop_name and link):
                raise ConfigError(f"--peer {p!r}: expected PEER_IP=POP/LINK")
            peers[ip] = LinkRef(pop_name, link)
        if not peers:
            raise ConfigError("--mrt needs --inventory (links with next_hops) or --peer mappings")
        report = MrtReport()
        routes = list(read_mrt(source, peers, report))
        typer.echo(
            f"{source}: {report.records} MRT records, {report.rib_entries} RIB entries, "
            f"{report.routes} routes on known links"
        )
        for ip, n in report.unmapped_peers.most_common(10):
            typer.echo(f"  skipped {n} entries from peer {ip} (no link has it as next hop)")
        for reason, n in report.skipped_records.items():
            typer.echo(f"  skipped {n} records: {reason}")
    else:
        from producers.routes.source import load_routes_file

        routes = load_routes_file(source)
        typer.echo(f"{source}: {len(routes)} routes")
    if dry_run:
        desired_records(routes)
        return
    settings = load_settings(RoutesSettings, config)
    producer = KafkaProducer(settings.kafka, ProducerOptions(linger_ms=20))
    result = publish_routes(routes, settings.kafka, producer, set(pop) if pop else None)
    typer.echo(
        f"published {len(result.upserted)} new/changed routes, {len(result.tombstoned)} "
        f"withdrawals, {result.unchanged} unchanged"
    )
