"""``netpilot dev kafka up|down|status|logs``."""

from __future__ import annotations

from pathlib import Path

import typer

from netpilot.dev.kafka import DEFAULT_PORT, LocalKafka, LocalKafkaCluster, default_state_dir

app = typer.Typer(no_args_is_help=True, help="Local development services.")
kafka_app = typer.Typer(
    no_args_is_help=True, help="A real Apache Kafka 4.3.1 (KRaft) on 127.0.0.1: one node, or a cluster (--nodes)."
)
app.add_typer(kafka_app, name="kafka")

StateDir = typer.Option(None, "--state-dir", help="Broker folder (default .netpilot/kafka or $NETPILOT_KAFKA_DIR).")


@kafka_app.command()
def up(
    state_dir: Path = StateDir,
    port: int = typer.Option(
        None,
        show_default=False,
        help=f"Client port (controller uses port+1); default {DEFAULT_PORT}, "
        "or the port the folder's broker already uses.",
    ),
    heap: str = typer.Option("512m", help="JVM heap (per node)."),
    nodes: int = typer.Option(
        1,
        min=1,
        help="Nodes: more than one makes a cluster (node i on port+2(i-1), replication 3, "
        "min.insync.replicas 2) in STATE_DIR/node-<i>, to try leader changes.",
    ),
) -> None:
    """Fetch Kafka with Maven if needed, format KRaft storage, start, wait until it answers."""
    cluster = LocalKafkaCluster.existing(state_dir)
    if cluster is None and nodes > 1:
        cluster = LocalKafkaCluster(state_dir or default_state_dir(), port or DEFAULT_PORT, nodes, heap=heap)
    if cluster is not None:
        typer.echo(f"starting {len(cluster.nodes)} Kafka nodes in {cluster.state_dir} ...", err=True)
        typer.echo(f"started\n  bootstrap: {cluster.up()}")
        return
    k = LocalKafka(state_dir, port=port, heap=heap)
    typer.echo(f"starting Kafka in {k.state_dir} (first run downloads it with Maven) ...", err=True)
    info = k.up()
    typer.echo(("reused running broker\n" if info.reused else "started\n") + info.describe())


@kafka_app.command()
def down(state_dir: Path = StateDir, wipe: bool = typer.Option(False, help="Also delete the data folder.")) -> None:
    """Stop the broker, or every node of a cluster, cleanly (SIGTERM, then SIGKILL after 30 s)."""
    cluster = LocalKafkaCluster.existing(state_dir)
    if cluster is not None:
        running = [n for n in cluster.nodes if n.pid() is not None]
        cluster.down()
        if wipe:
            for n in cluster.nodes:
                n.down(wipe=True)
        typer.echo(f"stopped {len(running)} node(s)" if running else "not running")
        return
    stopped = LocalKafka(state_dir).down(wipe=wipe)
    typer.echo("stopped" if stopped else "not running")


@kafka_app.command()
def status(state_dir: Path = StateDir) -> None:
    """Print the broker's version, mode (KRaft) and listeners (every node's, for a cluster);
    exit 1 when not running (any node, for a cluster)."""
    cluster = LocalKafkaCluster.existing(state_dir)
    brokers = cluster.nodes if cluster is not None else [LocalKafka(state_dir)]
    down = False
    for k in brokers:
        if k.pid() is None or not k.healthy():
            typer.echo(f"not running ({k.state_dir})")
            down = True
        else:
            typer.echo(k.info().describe())
    if down:
        raise typer.Exit(1)


@kafka_app.command()
def logs(state_dir: Path = StateDir, lines: int = typer.Option(50, "-n", help="How many lines.")) -> None:
    """Show the end of the broker's log file."""
    typer.echo(LocalKafka(state_dir).tail(lines))


lab_app = typer.Typer(
    no_args_is_help=True,
    help="A routing lab in network namespaces: FRR PoP router, BIRD peers, tc-shaped links, iperf3 (root only).",
)
app.add_typer(lab_app, name="lab")
LabPrefix = typer.Option("npl-", "--prefix", help="Namespace name prefix (several labs can coexist).")


@lab_app.command("up")
def lab_up(
    prefix: str = LabPrefix,
    bmp: int = typer.Option(None, help="TCP port of the BMP collector on 127.0.0.1: the lab router's BMP session."),
    flows: int = typer.Option(None, help="UDP port of the flow collector on 127.0.0.1: IPFIX from each egress veth."),
) -> None:
    """Build the lab and wait until the kernel forwards every prefix to its preferred peer."""
    from netpilot.dev.lab import Lab

    Lab(prefix).up(bmp_port=bmp, collector_port=flows)
    _lab_status(prefix)


@lab_app.command("down")
def lab_down(prefix: str = LabPrefix) -> None:
    """Stop the lab's daemons, delete its namespaces and its state folder."""
    from netpilot.dev.lab import Lab

    Lab(prefix).down()
    typer.echo("down")


@lab_app.command("status")
def lab_status(prefix: str = LabPrefix) -> None:
    """Namespaces, daemons, BGP sessions and where the kernel forwards each prefix; exit 1 when down."""
    if not _lab_status(prefix):
        raise typer.Exit(1)


def _lab_status(prefix: str) -> bool:
    import json

    from netpilot.dev.lab import Lab

    st = Lab(prefix).status()
    typer.echo(json.dumps(st, indent=1))
    return bool(st["up"])


@lab_app.command("demo")
def lab_demo(
    out: Path = typer.Option(Path("out/lab-demo"), "--out", help="Folder for chDB, logs and the PNG."),
    bootstrap: str = typer.Option("", "--bootstrap", help="Use this Kafka instead of starting the local one."),
    prefix: str = typer.Option("npd-", "--prefix", help="Namespace name prefix of the demo's lab."),
) -> None:
    """The closed loop in the lab, told step by step: a surge overloads the PNI, the autopilot
    moves a prefix, the kernel forwards it by the transit, the surge ends, it comes back.
    Writes OUT/lab-demo.png (both links' utilisation). Everything is torn down on exit,
    also on Ctrl-C."""
    import shutil
    import uuid

    from netpilot import catalog
    from netpilot.dev.kafka import LocalKafka
    from netpilot.dev.labloop import LabLoop, plot, run_story
    from netpilot.kafka.admin import TopicAdmin
    from netpilot.settings import KafkaSettings

    broker = None
    if not bootstrap:
        broker = LocalKafka()
        typer.echo("starting Kafka (the first run fetches it with Maven) ...")
        info = broker.up()
        bootstrap = info.bootstrap
        if info.reused:
            broker = None  # not ours to stop
    kafka = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=f"labdemo-{uuid.uuid4().hex[:8]}.")
    admin = TopicAdmin(kafka)
    admin.sync(catalog.ALL_TOPICS)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    loop = LabLoop(out.resolve(), kafka, prefix=prefix)
    code = 1
    try:
        typer.echo(f"lab {prefix}* up, pipeline starting (logs in {out / 'logs'}) ...")
        loop.up()
        story = run_story(loop, typer.echo)
        png = plot(story, out / "lab-demo.png")
        typer.echo(f"surge to relief (PNI under trigger by SNMP counters): {story.relief_s():.1f} s")
        typer.echo(f"utilisation over time: {png}")
        code = 0
    except KeyboardInterrupt:
        typer.echo("interrupted")
        code = 130
    finally:
        typer.echo("tearing down: traffic, pipeline, lab ...")
        loop.close()
        # the catalog's topics and the workers' own (faust changelogs and ticks) of this run
        admin.delete(sorted(n for n in admin.list_names() if n.startswith(kafka.topic_prefix)))
        if broker is not None:
            broker.down()
    raise typer.Exit(code)
