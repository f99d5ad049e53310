"""``netpilot injector run|drain|resume|pending|approve|reject``.

The control commands do not talk to a running injector: they write the people's word to
the compacted control topic, which every injector instance reads (and re-reads at start),
so a drain survives restarts and reaches every replica.
"""

from __future__ import annotations

import getpass
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from netpilot.runcmd import add_run_command
from netpilot.settings import load_settings

if TYPE_CHECKING:
    from sinks.bgp.settings import InjectorSettings

app = typer.Typer(no_args_is_help=True, help="BGP injector: applies the autopilot's overrides to the routers.")
CONFIG_HELP = "netpilot YAML (kafka:, injector:)."
ConfigOpt = typer.Option(None, "--config", "-c", help=CONFIG_HELP)


def _settings_class() -> type[InjectorSettings]:
    from sinks.bgp.settings import InjectorSettings

    return InjectorSettings


def _start(settings: InjectorSettings) -> int:
    from netpilot.lifecycle import run as run_services
    from netpilot.obs.logging import setup_logging
    from sinks.bgp.service import InjectorService

    setup_logging(settings.log, "injector")
    return run_services([InjectorService(settings)])


add_run_command(
    app,
    _settings_class,
    _start,
    doc="Keep the routers' injected routes equal to the recommendations (see the mode).",
    config_help=CONFIG_HELP,
    check_help="validate the configuration and exit",
    dump_help="print the effective configuration",
)


def _publish(config: Path | None, msg: object) -> None:
    from netpilot import catalog
    from netpilot.kafka.producer import KafkaProducer
    from netpilot.wire.injector import InjectorControl
    from sinks.bgp.settings import InjectorSettings

    assert isinstance(msg, InjectorControl)
    settings = load_settings(InjectorSettings, config)
    producer = KafkaProducer(settings.kafka)
    try:
        producer.produce(
            settings.kafka.topic(catalog.INJECTOR_CONTROL),
            msg.encode(),
            key=msg.key(),
            headers=InjectorControl.headers(),
        )
        producer.flush(30)
    finally:
        producer.close(timeout=10)


@app.command()
def drain(
    pop: str = typer.Option("*", "--pop", help="one PoP (default: every PoP)"),
    reason: str = typer.Option("", "--reason"),
    config: Path = ConfigOpt,
) -> None:
    """Kill switch: withdraw every injected route (of one PoP) and announce none until resume."""
    from netpilot.wire.injector import InjectorControl

    _publish(config, InjectorControl(kind="drain", pop=pop, by=getpass.getuser(), at=time.time(), reason=reason))
    typer.echo(f"drain {pop}: every injector withdraws its routes within a second")


@app.command()
def resume(pop: str = typer.Option("*", "--pop"), config: Path = ConfigOpt) -> None:
    """Lift a drain."""
    from netpilot.wire.injector import InjectorControl

    _publish(config, InjectorControl(kind="resume", pop=pop, by=getpass.getuser(), at=time.time()))
    typer.echo(f"resume {pop}")


def _read_state(config: Path | None):
    from netpilot import catalog
    from netpilot.kafka.compacted import read_compacted
    from netpilot.wire.autopilot import Recommendation
    from netpilot.wire.injector import InjectorControl
    from netpilot.wire.links import LinkInventory
    from netpilot.wire.routes import Route
    from sinks.bgp.desired import DesiredState, Network
    from sinks.bgp.settings import InjectorSettings

    settings = load_settings(InjectorSettings, config)
    k = settings.kafka
    state, net = DesiredState(), Network()
    for key, v in read_compacted(k, k.topic(catalog.LINK_INVENTORY)).items():
        net.apply_inventory(key, None if v is None else LinkInventory.decode(v))
    for key, v in read_compacted(k, k.topic(catalog.ROUTES)).items():
        net.apply_route(key, None if v is None else Route.decode(v))
    for key, v in read_compacted(k, k.topic(catalog.RECOMMENDATIONS)).items():
        state.apply_recommendation(key, None if v is None else Recommendation.decode(v))
    for key, v in read_compacted(k, k.topic(catalog.INJECTOR_CONTROL)).items():
        state.apply_control(None if v is None else InjectorControl.decode(v), key)
    return settings, state, net


@app.command()
def pending(config: Path = ConfigOpt) -> None:
    """Valid overrides waiting for a person's approval (suggest mode)."""
    from sinks.bgp.desired import Rules, desired_overrides

    s, state, net = _read_state(config)
    rules = Rules(s.max_prefix_len_v4, s.max_prefix_len_v6, s.allowed_prefixes, s.deny_prefixes, s.max_active_per_pop)
    view = desired_overrides(state, net, rules, "suggest", time.time())
    if not view.pending:
        typer.echo("nothing pending")
    for ov in sorted(view.pending, key=lambda o: (o.pop, -o.rate_bps)):
        until = time.strftime("%H:%M:%S", time.localtime(ov.valid_until))
        typer.echo(
            f"{ov.pop}  {ov.prefix:<22} -> {ov.link_id} via {ov.next_hop}  "
            f"{ov.rate_bps / 1e6:,.0f} Mbit/s  until {until}"
        )
    for rec, why in view.refused:
        typer.echo(f"refused {rec.pop} {rec.prefix}: {why.reason}: {why.detail}", err=True)


def _decide(kind: str, pop: str, prefix: str, config: Path | None, reason: str) -> None:
    from netpilot.errors import ConfigError
    from netpilot.rib import normal_prefix
    from netpilot.wire.injector import InjectorControl

    _, state, _ = _read_state(config)
    rec = state.recs.get((pop, prefix)) or state.recs.get((pop, normal_prefix(prefix)))
    if rec is None:
        raise ConfigError(f"no current recommendation for {pop} {prefix} (see `netpilot injector pending`)")
    _publish(
        config,
        InjectorControl(
            kind=kind,  # type: ignore[arg-type]
            pop=pop,
            prefix=rec.prefix,
            created_at=rec.created_at,
            to_link=rec.to.link_id,
            by=getpass.getuser(),
            at=time.time(),
            reason=reason,
        ),
    )
    typer.echo(f"{kind}d {pop} {rec.prefix} -> {rec.to.link_id}")


@app.command()
def approve(pop: str, prefix: str, reason: str = typer.Option("", "--reason"), config: Path = ConfigOpt) -> None:
    """Approve the current override of PREFIX at POP (suggest mode)."""
    _decide("approve", pop, prefix, config, reason)


@app.command()
def reject(pop: str, prefix: str, reason: str = typer.Option("", "--reason"), config: Path = ConfigOpt) -> None:
    """Reject the current override of PREFIX at POP (suggest mode)."""
    _decide("reject", pop, prefix, config, reason)
