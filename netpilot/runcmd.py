"""The ``run`` command every long-running component has: ``netpilot <component> run
[--config FILE] [--check] [--dump]``.

Load the settings (:func:`netpilot.settings.settings_to_run`: a ConfigError names the bad
key), print them masked with ``--dump``, validate only with ``--check``, otherwise start the
component and exit with its code. Each CLI passes what differs: its settings class and how
it starts (both imported lazily, so ``netpilot --help`` stays fast), and for ``--check`` an
optional report of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import typer

from netpilot.settings import ComponentSettings, settings_to_run

S = TypeVar("S", bound=ComponentSettings)


def add_run_command(
    app: typer.Typer,
    settings_class: Callable[[], type[S]],
    start: Callable[[S], int],
    *,
    doc: str,
    check_report: Callable[[S], str] | None = None,
    config_help: str = "YAML configuration file.",
    check_help: str = "Validate the configuration and exit.",
    dump_help: str = "Print the effective configuration and exit.",
) -> None:
    """Register ``run`` on ``app``.

    ``start(settings)`` runs the component and returns the process exit code;
    ``check_report(settings)``, if given, is what ``--check`` prints (nothing otherwise);
    ``doc`` is the command's help.
    """

    def run(
        config: Path | None = typer.Option(None, "--config", "-c", help=config_help),
        check: bool = typer.Option(False, "--check", help=check_help),
        dump: bool = typer.Option(False, "--dump", help=dump_help),
    ) -> None:
        settings = settings_to_run(settings_class(), config, check=check and check_report is None, dump=dump)
        if settings is None:
            return
        if check and check_report is not None:
            typer.echo(check_report(settings))
            return
        raise typer.Exit(start(settings))

    run.__doc__ = doc
    app.command("run")(run)
