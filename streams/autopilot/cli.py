"""``netpilot autopilot plan``: run the planner offline over a scenario file."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from netpilot.runcmd import add_run_command

if TYPE_CHECKING:
    from streams.autopilot.settings import AutopilotSettings

app = typer.Typer(no_args_is_help=True, help="The egress autopilot (planner).")


@app.callback()
def _group() -> None:
    """The egress autopilot (planner)."""


@app.command("plan")
def plan_cmd(
    scenario: Path = typer.Option(
        ..., "--scenario", "-s", exists=True, dir_okay=False, help="Scenario YAML (docs/autopilot-scenarios.md)."
    ),
    cycles: int | None = typer.Option(
        None, "--cycles", "-n", min=1, help="Cycles to run; past the file's end the last repeats."
    ),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="YAML with an autopilot.policy section (base policy)."
    ),
    changes_only: bool = typer.Option(False, "--changes-only", help="Leave REFRESH recommendations out of the output."),
) -> None:
    """Print each cycle's recommendations, then its summary, as JSON lines."""
    from netpilot.settings import load_settings
    from streams.autopilot import explain
    from streams.autopilot import scenario as scn
    from streams.autopilot.settings import AutopilotSettings

    base = load_settings(AutopilotSettings, config).policy.model_dump() if config else None
    spec = scn.load(scenario, base)
    for cycle, result in scn.run(spec, cycles):
        for rec in explain.recommendations(result, cycle.snapshot, cycle.policy):
            if not (changes_only and rec.action == "REFRESH"):
                typer.echo(rec.encode().decode())
        typer.echo(explain.summary(result).encode().decode())


def _settings_class() -> type[AutopilotSettings]:
    from streams.autopilot.settings import AutopilotSettings

    return AutopilotSettings


def _start(settings: AutopilotSettings) -> int:
    from netpilot import lifecycle
    from netpilot.obs.logging import setup_logging
    from streams.autopilot.metrics import AutopilotMetrics
    from streams.autopilot.service import AutopilotService
    from streams.autopilot.worker import app_id

    setup_logging(settings.log, component="autopilot")
    metrics = AutopilotMetrics.create()
    typer.echo(f"app id {app_id(settings)}; mode {settings.policy.mode}; cycle {settings.policy.cycle_s:g}s", err=True)
    if warning := settings.takeover_warning():
        logging.getLogger("netpilot.autopilot").warning("%s", warning)
    return lifecycle.serve(AutopilotService(settings, metrics), metrics.registry, settings.metrics)


add_run_command(
    app,
    _settings_class,
    _start,
    doc="Run the autopilot worker (faust) until SIGINT/SIGTERM: a plan per PoP every cycle.",
)
