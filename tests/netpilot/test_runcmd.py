"""netpilot.runcmd: the shared ``run [--config] [--check] [--dump]`` command."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from netpilot.runcmd import add_run_command
from streams.settings import StreamsSettings


def _app(started: list[StreamsSettings], report: bool) -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _group() -> None:
        """A group, so that ``run`` stays a subcommand."""

    def start(settings: StreamsSettings) -> int:
        started.append(settings)
        return 3

    add_run_command(
        app,
        lambda: StreamsSettings,
        start,
        doc="Run the thing.",
        check_report=(lambda s: f"ok: {type(s).__name__}") if report else None,
    )
    return app


def test_run_check_dump_and_start() -> None:
    runner, started = CliRunner(), []
    plain, reporting = _app(started, report=False), _app(started, report=True)
    assert "Run the thing." in runner.invoke(plain, ["run", "--help"]).output
    res = runner.invoke(plain, ["run", "--check"])
    assert (res.exit_code, res.output) == (0, "")
    res = runner.invoke(reporting, ["run", "--check"])
    assert (res.exit_code, res.output) == (0, "ok: StreamsSettings\n")
    for app in (plain, reporting):
        res = runner.invoke(app, ["run", "--check", "--dump"])  # --dump wins, alone
        assert res.exit_code == 0 and "kafka" in json.loads(res.output)
    assert not started
    assert runner.invoke(plain, ["run"]).exit_code == 3
    assert len(started) == 1 and isinstance(started[0], StreamsSettings)
