"""``netpilot grafana render|check``: write or verify the dashboards-as-code JSON."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, help="Grafana dashboards as code.")


@app.command()
def render(out: Path = typer.Option(None, "--out", help="Folder (default: grafana/dashboards).")) -> None:
    """Render the dashboards to JSON files (only changed files are rewritten)."""
    from grafana.generate import DASHBOARD_DIR, write

    written = write(out or DASHBOARD_DIR)
    typer.echo("\n".join(str(p) for p in written) or "dashboards up to date")


@app.command()
def check() -> None:
    """Exit 1 when the committed JSON differs from a fresh render."""
    from grafana.generate import stale

    names = stale()
    if names:
        typer.echo(f"stale dashboards (run `netpilot grafana render`): {', '.join(names)}", err=True)
        raise typer.Exit(1)
    typer.echo("dashboards up to date")
