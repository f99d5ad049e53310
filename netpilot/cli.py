"""The one ``netpilot`` command. Each component mounts its own sub-app, imported lazily so
``netpilot dev kafka up`` does not pay for importing faust or chDB."""

from __future__ import annotations

import importlib
import sys

import click
import typer.main

# name -> (module, attribute, help). Attribute is a typer.Typer app or a click command.
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "dev": ("netpilot.dev.cli", "app", "Local development services (a real Kafka broker)."),
    "topics": ("netpilot.kafka.cli", "app", "Create/reconcile topics from the catalog; show drift."),
    "demo": ("netpilot.demo", "app", "Run the demo (see README)."),
    "simulate": ("producers.simulator.cli", "app", "Simulate a network: flows, counters, ground truth."),
    "autopilot": ("streams.autopilot.cli", "app", "Egress autopilot: run the planner over a scenario."),
    "decode": ("producers.collector.decode_cli", "app", "Decode a pcap of NetFlow/IPFIX/sFlow datagrams to JSON flows."),
    "collector": ("producers.collector.cli", "app", "Flow collector: NetFlow/IPFIX/sFlow to the flows topic."),
    "strimzi": ("strimzi.cli", "app", "Strimzi CRs from the catalog: render, validate, apply."),
    "sink": ("sinks.cli", "app", "Sinks: ClickHouse (migrate, run, query) and Prometheus exporter."),
    "streams": ("streams.cli", "app", "Stream processing: flow windows and link utilisation."),
    "inventory": ("producers.inventory.cli", "app", "Link inventory: validate and publish."),
    "snmp": ("producers.linkstats.cli", "app", "SNMP interface counters -> link-stats."),
    "routes": ("producers.routes.cli", "app", "Routes per PoP and link -> the routes topic."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        entry = SUBCOMMANDS.get(name)
        if entry is None:
            return None
        module, attr, _help = entry
        obj = getattr(importlib.import_module(module), attr)
        cmd = typer.main.get_command(obj) if isinstance(obj, typer.Typer) else obj
        if not cmd.help:
            cmd.help = _help
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SUBCOMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="netpilot")
def cli() -> None:
    """netpilot: network observability pipeline with an egress autopilot."""


def main() -> None:
    from netpilot.errors import ConfigError, NetpilotError

    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except NetpilotError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
