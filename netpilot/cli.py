"""The one ``netpilot`` command. Each component mounts its own sub-app, imported lazily so
``netpilot dev kafka up`` does not pay for importing faust or chDB."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer
import typer.main
from typer.core import TyperGroup

# name -> (module, attribute, help). Attribute is a typer.Typer app (or a typer command).
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "dev": ("netpilot.dev.cli", "app", "Local development services (a real Kafka broker)."),
    "topics": ("netpilot.kafka.cli", "app", "Create/reconcile topics from the catalog; show drift."),
    "demo": ("netpilot.demo", "app", "Run the demo (see README)."),
    "simulate": ("producers.simulator.cli", "app", "Simulate a network: flows, counters, ground truth."),
    "autopilot": ("streams.autopilot.cli", "app", "Egress autopilot: the worker (run) and the offline planner (plan)."),
    "decode": (
        "producers.collector.decode_cli",
        "app",
        "Decode a pcap of NetFlow/IPFIX/sFlow datagrams: flows in capture order (JSON lines, CSV, Parquet, Arrow).",
    ),
    "collector": ("producers.collector.cli", "app", "Flow collector: NetFlow/IPFIX/sFlow to the flows topic."),
    "strimzi": ("strimzi.cli", "app", "Strimzi CRs from the catalog: render, validate, apply."),
    "injector": ("sinks.bgp.cli", "app", "BGP injector: applies the autopilot's overrides to the routers."),
    "sink": ("sinks.cli", "app", "Sinks: ClickHouse (migrate, run, query) and Prometheus exporter."),
    "streams": ("streams.cli", "app", "Stream processing: flow windows and link utilisation."),
    "inventory": ("producers.inventory.cli", "app", "Link inventory: validate and publish."),
    "snmp": ("producers.linkstats.cli", "app", "SNMP interface counters -> link-stats."),
    "routes": ("producers.routes.cli", "app", "Routes per PoP and link -> the routes topic."),
    "grafana": ("grafana.cli", "app", "Grafana dashboards as code: render, check."),
    "report": ("grafana.report_cli", "app", "Render the dashboards' ClickHouse panels to PNG + HTML."),
}


class LazyGroup(TyperGroup):
    """Typer's own group class (typer vendors click: plain click classes do not mix) with
    sub-commands imported on first use."""

    def list_commands(self, ctx: Any) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: Any, name: str) -> Any:
        entry = SUBCOMMANDS.get(name)
        if entry is None:
            return None
        module, attr, help_ = entry
        obj = getattr(importlib.import_module(module), attr)
        cmd = typer.main.get_command(obj) if isinstance(obj, typer.Typer) else obj
        if not cmd.help:
            cmd.help = help_
        return cmd

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        # One line per command from the table: listing must not import every component.
        rows = [(name, SUBCOMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


app = typer.Typer(
    cls=LazyGroup,
    rich_markup_mode=None,
    add_completion=False,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from netpilot import __version__

        typer.echo(f"netpilot {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """netpilot: network observability pipeline with an egress autopilot."""


def main() -> None:
    """Entry point: exit 0 ok, 1 runtime failure, 2 bad configuration or usage, 130 interrupted."""
    from netpilot.errors import ConfigError, NetpilotError

    try:
        app()  # standalone: typer handles --help, usage errors (exit 2) and typer.Exit itself
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except NetpilotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
