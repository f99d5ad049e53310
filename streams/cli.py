"""``netpilot streams run``: the aggregation and link-utilisation worker."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from netpilot.runcmd import add_run_command

if TYPE_CHECKING:
    from streams.settings import StreamsSettings

app = typer.Typer(no_args_is_help=True, help="Stream processing: windows and link utilisation.")


@app.callback()
def streams() -> None:
    """Stream processing: flow windows and link utilisation (a faust worker)."""


def _settings_class() -> type[StreamsSettings]:
    from streams.settings import StreamsSettings

    return StreamsSettings


def _start(settings: StreamsSettings) -> int:
    from netpilot import lifecycle
    from netpilot.obs.logging import setup_logging
    from streams.app import app_id, internal_topic_prefix
    from streams.metrics import StreamsMetrics
    from streams.service import StreamsService

    setup_logging(settings.log, component="streams")
    metrics = StreamsMetrics.create()
    typer.echo(f"app id {app_id(settings)}; internal topics {internal_topic_prefix(app_id(settings))}*", err=True)
    return lifecycle.serve(StreamsService(settings, metrics), metrics.registry, settings.metrics)


add_run_command(app, _settings_class, _start, doc="Run the faust worker until SIGINT/SIGTERM.")
