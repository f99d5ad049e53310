"""``netpilot demo``: what `make demo` runs -- the whole pipeline on a simulated network.

Kafka (the local broker, started if needed) -> topics for this run (a fresh prefix, so runs
never mix) -> inventory and routes published -> collector, streams, autopilot, ClickHouse
sink (chDB in OUT/chdb) and Prometheus exporter as child processes -> the scenario in real
time, with a live view -> a summary, how to query the data, and PNG charts in OUT.
Ctrl-C stops everything (children first, then the broker if this run started it).
``--instances 2`` runs two of each scaled component and SIGKILLs one of each at
``--kill-one-at`` (netpilot/dev/demoinstances.py; docs/recovery.md "All at once").
"""

from __future__ import annotations

import shutil
import signal
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:  # imported where used: `netpilot --help` stays fast
    from rich.console import Console

    from netpilot.dev.demoinstances import FlowCounter, InstanceTracker
    from netpilot.dev.demoview import DemoWatcher
    from netpilot.dev.pipeline import Pipeline
    from netpilot.settings import KafkaSettings

REPO = Path(__file__).resolve().parents[1]
TAKEOVER_WAIT_S = 120.0
"""After the scenario, how long past a kill the live view waits for the survivors to take
everything over (a faust takeover under load was seen to take over 30 s)."""
app = typer.Typer(help="Run the demo.", invoke_without_command=True)


@app.callback()
def demo(
    duration: float = typer.Option(0, "--duration", help="Seconds of scenario to run (0: all of it)."),
    scenario: Path = typer.Option(
        REPO / "examples" / "simulator" / "demo.yaml",
        "--scenario",
        exists=True,
        help="Simulator scenario (examples/simulator/).",
    ),
    out: Path = typer.Option(Path("out/demo"), "--out", help="Folder for chDB, logs, network files, charts."),
    cycle_s: float = typer.Option(15.0, "--cycle-s", help="Autopilot cycle period."),
    bootstrap: str = typer.Option("", "--bootstrap", help="Use this Kafka instead of starting the local one."),
    keep_kafka: bool = typer.Option(False, "--keep-kafka", help="Leave a broker this run started running."),
    keep_topics: bool = typer.Option(
        False, "--keep-topics", help="Keep this run's topics (deleted by default: the data is in ClickHouse)."
    ),
    refresh_s: float = typer.Option(1.0, "--refresh", help="Live view refresh period."),
    mode: str = typer.Option(
        "apply",
        "--mode",
        help="apply: the BGP injector announces the overrides to a "
        "BIRD per simulated router and the traffic follows "
        "(closed loop); observe: recommendations only "
        "(what-if).",
    ),
    instances: int = typer.Option(
        1,
        "--instances",
        min=1,
        help="Processes of each of collector, streams, autopilot and ClickHouse sink (the "
        "collectors share the UDP ports; each sink has its own chDB store).",
    ),
    kill_one_at: float | None = typer.Option(
        None,
        "--kill-one-at",
        help="With --instances > 1: seconds into the scenario at which one instance of each "
        "is SIGKILLed (default: half the run; 0: none).",
    ),
) -> None:
    """Run the whole pipeline on the scenario and watch it (see README)."""
    from rich.console import Console

    from netpilot.dev.kafka import LocalKafka
    from netpilot.settings import KafkaSettings

    console = Console()
    console.print(
        "[bold]netpilot demo[/bold]: simulator -> collector -> Kafka -> streams -> autopilot "
        "-> ClickHouse (chDB) + Prometheus"
    )
    broker = None
    if not bootstrap:
        broker = LocalKafka()
        with console.status("starting Kafka 4.3.1 (the first run fetches it with Maven) ..."):
            info = broker.up()
        console.print(info.describe())
        bootstrap = info.bootstrap
        if info.reused:
            broker = None  # not ours to stop
    run_id = time.strftime("%Y%m%d%H%M%S") + uuid.uuid4().hex[:4]
    kafka = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=f"demo-{run_id}.")
    try:
        if mode not in ("apply", "observe"):
            raise typer.BadParameter("--mode must be apply or observe")
        if kill_one_at is None:
            kill_one_at = _run_length(scenario, duration) / 2 if instances > 1 else 0.0
        scale = Scale(instances, kill_one_at if instances > 1 else 0.0)
        code = _run(console, kafka, scenario, out, duration, cycle_s, refresh_s, keep_topics, mode, scale)
    finally:
        if broker is not None and not keep_kafka:
            broker.down()
            console.print("Kafka stopped (--keep-kafka leaves it running)")
    raise typer.Exit(code)


@dataclass(frozen=True)
class Scale:
    """``--instances`` and when to kill one of each (0: never)."""

    instances: int = 1
    kill_at_s: float = 0.0


def _run_length(scenario: Path, duration: float) -> float:
    import yaml

    return duration or float(yaml.safe_load(scenario.read_text()).get("duration_s", 0))


def _run(
    console: Console,
    kafka: KafkaSettings,
    scenario: Path,
    out: Path,
    duration: float,
    cycle_s: float,
    refresh_s: float,
    keep_topics: bool,
    mode: str = "apply",
    scale: Scale = Scale(),
) -> int:
    from netpilot import catalog
    from netpilot.dev.demoview import DemoWatcher
    from netpilot.dev.pipeline import Pipeline, PipelineOptions
    from netpilot.kafka.admin import TopicAdmin

    for stale in ("chdb", "logs", "streams", "autopilot", "network", "routers", "injector"):
        shutil.rmtree(out / stale, ignore_errors=True)  # one run per folder: no stale data in charts
    out.mkdir(parents=True, exist_ok=True)
    admin = TopicAdmin(kafka)
    admin.sync(catalog.ALL_TOPICS)
    console.print(f"topics: {len(catalog.ALL_TOPICS)} with prefix {kafka.topic_prefix!r}")
    closed = mode == "apply"
    pipe = Pipeline(
        out,
        kafka,
        scenario,
        PipelineOptions(
            cycle_s=cycle_s,
            hold_s=max(60.0, 4 * cycle_s),
            autopilot_mode="suggest" if closed else "observe",
            injector="apply" if closed else None,
            instances=scale.instances,
        ),
    )
    watcher = None
    tracker: InstanceTracker | None = None
    flows: FlowCounter | None = None
    outcome = "failed"
    try:
        with console.status("publishing inventory and routes ..."):
            pipe.publish_network()
        with console.status(
            "starting collector, streams, autopilot, ClickHouse sink, Prometheus exporter"
            + (", BIRD routers and the BGP injector" if closed else "")
            + " ..."
        ):
            pipe.start()
        for name, c in pipe.children.items():
            console.print(
                f"  {name:16} pid {c.proc.pid:<7} metrics http://127.0.0.1:{c.metrics_port}/metrics  log {c.log}"
            )
        watcher = DemoWatcher(kafka, f"netpilot-demo-{pipe.run_id}")
        if scale.instances > 1:
            from netpilot.dev.demoinstances import FlowCounter, InstanceTracker

            tracker = InstanceTracker(pipe)
            flows = FlowCounter(kafka, f"netpilot-demo-flows-{pipe.run_id}")
            if scale.kill_at_s:
                console.print(f"one instance of each will be SIGKILLed {scale.kill_at_s:g} s into the scenario")
        outcome = _watch(console, pipe, watcher, duration, cycle_s, refresh_s, Scaled(tracker, flows, scale.kill_at_s))
        if outcome == "ok" and flows is not None:
            # the totals: every flow published read back from the topic, every sink done
            with console.status("counting the flows topic and waiting for the sinks ..."):
                if not flows.catch_up(60):
                    console.print("[yellow]the flows topic was not read to its end within 60 s[/]")
                if not pipe.wait_sinks_idle(60):
                    console.print("[yellow]the ClickHouse sinks still had rows pending or lag after 60 s[/]")
                if tracker is not None:
                    tracker.update()  # the survivors' last counts (intent replays) before they stop
    except KeyboardInterrupt:
        outcome = "interrupted"
    finally:
        with console.status("stopping the pipeline ..."):
            codes = pipe.stop()
        if watcher is not None:
            watcher.close()
        if tracker is not None:
            tracker.close()
        if flows is not None:
            flows.close()
        if not keep_topics:
            admin.delete(kafka.topic(t) for t in catalog.ALL_TOPICS)
    console.print("stopped: " + ", ".join(f"{n} ({_how(pipe, n, c)})" for n, c in codes.items()))
    codes_by_outcome = {"ok": 0, "interrupted": 130, "failed": 1}
    if watcher is None:
        return codes_by_outcome[outcome]
    from netpilot.dev.demosummary import print_summary

    print_summary(console, watcher.state, pipe, out)
    if tracker is not None and flows is not None:
        from netpilot.dev.demosummary import print_scale_summary

        print_scale_summary(console, watcher.state, pipe, tracker, flows)
    return codes_by_outcome[outcome]


def _how(pipe: Pipeline, name: str, code: int | None) -> str:
    if name in pipe.killed:
        return "killed by the demo"
    return "ok" if code == 0 else f"exit {code}"


@dataclass
class Scaled:
    """What the live view does only with --instances > 1."""

    tracker: InstanceTracker | None = None
    flows: FlowCounter | None = None
    kill_at_s: float = 0.0
    killed: bool = False
    last_update: float = 0.0


def _watch(
    console: Console,
    pipe: Pipeline,
    watcher: DemoWatcher,
    duration: float,
    cycle_s: float,
    refresh_s: float,
    scaled: Scaled,
) -> str:
    """Live view until the scenario ends and the last windows are in: "ok", "interrupted"
    or "failed" (a component or the simulator exited with an error)."""
    # Ctrl-C during the live view sets a flag that the loop checks every 0.2 s, instead of a
    # KeyboardInterrupt raised wherever the main thread happens to be: one landing between a
    # lock's acquire and its `with` block (rich's Live and Console locks) leaves the lock held,
    # and the Live's refresh thread, then the demo, hang. A second Ctrl-C raises at once.
    interrupted = threading.Event()

    def on_sigint(signum: int, frame: object) -> None:
        if interrupted.is_set():
            raise KeyboardInterrupt
        interrupted.set()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        return _live(console, pipe, watcher, duration, cycle_s, refresh_s, interrupted, scaled)
    finally:
        signal.signal(signal.SIGINT, previous)


def _live(
    console: Console,
    pipe: Pipeline,
    watcher: DemoWatcher,
    duration: float,
    cycle_s: float,
    refresh_s: float,
    interrupted: threading.Event,
    scaled: Scaled | None = None,
) -> str:
    from rich.live import Live
    from rich.text import Text

    from netpilot.dev.demoview import render

    sim = pipe.simulate(duration or None)
    console.print(f"  simulator        pid {sim.pid:<7} (Ctrl-C stops everything)")
    t0 = time.monotonic()
    drain_until = None
    try:
        with Live(console=console, refresh_per_second=4, transient=False) as live:
            while not interrupted.is_set():
                deadline = time.monotonic() + refresh_s
                while time.monotonic() < deadline and not interrupted.is_set():
                    watcher.poll(0.2)
                    if scaled is not None and scaled.tracker is not None:
                        _scaled_step(console, scaled, scaled.tracker, time.monotonic() - t0)
                collector = pipe.children.get("collector")
                if collector is not None:
                    watcher.state.scrape_flows(collector.metrics())
                sink = pipe.children.get("sink-clickhouse")
                if sink is not None:
                    watcher.state.scrape_sink(sink.metrics())
                elapsed = time.monotonic() - t0
                phase = "running scenario" if sim.poll() is None else "draining"
                tracker = scaled.tracker if scaled is not None else None
                live.update(
                    render(
                        watcher.state,
                        f"[bold]{phase}[/] {elapsed:5.0f} s",
                        {n: c.alive() for n, c in pipe.children.items()},
                        None if tracker is None else [tracker.table(), *map(Text, tracker.takeover_lines())],
                    )
                )
                if pipe.failed():
                    console.print(f"[red]component(s) exited: {pipe.failed()}; logs in {pipe.root / 'logs'}[/]")
                    return "failed"
                if sim.poll() is not None and drain_until is None:
                    # the last flow windows close (lateness) and one more cycle reports them
                    drain_until = time.monotonic() + 10 + cycle_s
                if drain_until is not None and time.monotonic() > drain_until:
                    if tracker is not None and tracker.taking_over(TAKEOVER_WAIT_S):
                        continue  # a loaded machine: show the takeover end rather than cut it off
                    break
    except KeyboardInterrupt:
        interrupted.set()
    if interrupted.is_set():
        console.print("[yellow]interrupted: stopping everything ...[/]")
        return "interrupted"
    if sim.returncode:
        console.print(f"[red]the simulator failed ({sim.returncode}); see {pipe.root / 'logs' / 'simulator.log'}[/]")
        return "failed"
    return "ok"


def _scaled_step(console: Console, scaled: Scaled, tracker: InstanceTracker, elapsed: float) -> None:
    """Count flows, read who holds what (about once a second), kill when it is time."""
    if scaled.flows is not None:
        scaled.flows.poll(0.0)
    now = time.monotonic()
    if now - scaled.last_update < 1.0:
        return
    scaled.last_update = now
    tracker.update()
    if scaled.kill_at_s and not scaled.killed and elapsed >= scaled.kill_at_s:
        scaled.killed = True
        for t in tracker.kill_one_each():
            console.print(
                f"[red]killed[/] (SIGKILL) {t.victim} at {elapsed:.0f} s, holding "
                f"{', '.join(sorted(t.held)) or 'nothing'}"
            )
