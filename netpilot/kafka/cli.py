"""``netpilot topics sync|diff|list`` — the broker's topics reconciled with the catalog."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from pydantic import Field

from netpilot import catalog
from netpilot.settings import ComponentSettings, load_settings

app = typer.Typer(no_args_is_help=True, help="Topics from the catalog.")
ConfigOpt = typer.Option(None, "--config", "-c", help="YAML configuration (kafka: section).")


if TYPE_CHECKING:
    from netpilot.kafka.admin import TopicAdmin


class TopicsSettings(ComponentSettings):
    COMPONENT = "topics"

    min_replicas: int = Field(
        1,
        ge=1,
        description="replication factor a topic gets at least: 3 on a cluster of 3 or more brokers "
        "(the catalog's figure is the one-broker development one)",
    )


def _admin(config: Path | None) -> TopicAdmin:
    from netpilot.kafka.admin import TopicAdmin

    s = load_settings(TopicsSettings, config)
    return TopicAdmin(s.kafka, min_replicas=s.min_replicas)


def markdown_table() -> str:
    """The catalog as the Markdown table the README embeds (a test keeps them equal)."""
    lines = [
        "| topic | key | cleanup | partitions | value schema | producers → consumers | purpose |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in catalog.ALL_TOPICS:
        flow = f"{', '.join(t.producers)} → {', '.join(t.consumers) or '—'}"
        lines.append(
            f"| `{t.name}` | `{t.key}` | {t.cleanup_policy} | {t.partitions} | "
            f"`{t.value_schema}` | {flow} | {t.purpose} |"
        )
    return "\n".join(lines)


@app.command("list")
def list_(markdown: bool = typer.Option(False, "--markdown", help="As the README's Markdown table.")) -> None:
    """Print the catalog: topic, partitions, cleanup, key, schema, producers -> consumers."""
    if markdown:
        typer.echo(markdown_table())
        return
    for t in catalog.ALL_TOPICS:
        typer.echo(
            f"{t.name:42} p={t.partitions:<2} {t.cleanup_policy:8} key={t.key:28} "
            f"{t.value_schema:22} {','.join(t.producers)} -> {','.join(t.consumers) or '-'}"
        )


@app.command()
def diff(config: Path = ConfigOpt) -> None:
    """Show how the broker differs from the catalog; exit 1 if it does."""
    diffs = _admin(config).diff()
    for d in diffs:
        typer.echo(d.describe())
    if not all(d.in_sync for d in diffs):
        raise typer.Exit(1)


@app.command()
def sync(config: Path = ConfigOpt) -> None:
    """Create missing topics, add partitions, fix configs; report what cannot be fixed."""
    report = _admin(config).sync()
    for name in report.created:
        typer.echo(f"created      {name}")
    for name in report.repartitioned:
        typer.echo(f"partitions+  {name}")
    for name in report.reconfigured:
        typer.echo(f"reconfigured {name}")
    for line in report.drift:
        typer.echo(f"DRIFT        {line}", err=True)
    if not (report.created or report.repartitioned or report.reconfigured):
        typer.echo("all topics in sync with the catalog")
    if report.drift:
        raise typer.Exit(1)
