"""``netpilot streams run``: the aggregation and link-utilisation worker."""

from __future__ import annotations

from pathlib import Path

import typer

from netpilot.settings import settings_to_run

app = typer.Typer(no_args_is_help=True, help="Stream processing: windows and link utilisation.")


@app.callback()
def streams() -> None:
    """Stream processing: flow windows and link utilisation (a faust worker)."""


@app.command()
def run(config: Path = typer.Option(None, "--config", "-c", help="YAML configuration file."),
        check: bool = typer.Option(False, "--check", help="Validate the configuration and exit."),
        dump: bool = typer.Option(False, "--dump", help="Print the effective configuration and exit.")) -> None:
    """Run the faust worker until SIGINT/SIGTERM."""
    from streams.settings import StreamsSettings

    settings = settings_to_run(StreamsSettings, config, check=check, dump=dump)
    if settings is None:
        return
    from netpilot import lifecycle
    from netpilot.obs.logging import setup_logging
    from streams.app import app_id, internal_topic_prefix
    from streams.metrics import StreamsMetrics
    from streams.service import StreamsService

    setup_logging(settings.log, component="streams")
    metrics = StreamsMetrics.create()
    typer.echo(f"app id {app_id(settings)}; internal topics {internal_topic_prefix(app_id(settings))}*",
               err=True)
    raise typer.Exit(lifecycle.serve(StreamsService(settings, metrics), metrics.registry, settings.metrics))
