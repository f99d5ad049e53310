"""``netpilot simulate --scenario FILE``: run a scenario against a collector (and Kafka)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

app = typer.Typer(
    help="Simulate a network: flows over UDP, counters to Kafka, ground truth to files.", invoke_without_command=True
)


@app.callback()
def simulate(
    scenario: Path = typer.Option(..., "--scenario", "-s", exists=True, help="Scenario YAML (examples/simulator/)."),
    out: Path = typer.Option(Path("out/simulator"), help="Folder for inventory, routes, truth and pcap."),
    netflow: str = typer.Option("127.0.0.1:2055", help="Collector NetFlow/IPFIX address."),
    sflow: str = typer.Option("127.0.0.1:6343", help="Collector sFlow address."),
    kafka: str = typer.Option("", help="Bootstrap servers for link-stats (empty: do not publish counters)."),
    topic_prefix: str = typer.Option("", help="Topic prefix (as in the kafka settings)."),
    fast: bool = typer.Option(
        False,
        "--fast",
        help="Do not wait: emit the whole scenario as fast as possible. With --kafka, counters dated more "
        "than the consumers' wire.max_future_s (300 s) ahead of their clock are dead-lettered by them.",
    ),
    duration: float = typer.Option(0, help="Override the scenario's duration_s (0: keep)."),
    pcap: bool = typer.Option(False, help="Also write every datagram to OUT/datagrams.pcap."),
    routers: Path = typer.Option(
        None,
        "--routers",
        exists=True,
        help="YAML {community: A:B, routers: {NAME: {kind: bird|frr, socket: PATH}}}: "
        "steer each prefix by the route the router selected (closed loop).",
    ),
    files_only: bool = typer.Option(
        False,
        "--files-only",
        help="Only write OUT/inventory.yaml and OUT/routes.yaml (to start the "
        "collector with them before the traffic), then exit.",
    ),
) -> None:
    """Run SCENARIO: datagrams to the collector, counters to Kafka, truth to OUT."""
    from producers.simulator.run import LinkStatsSink, Simulator
    from producers.simulator.scenario import load_scenario

    sc = load_scenario(scenario)
    if duration:
        sc = sc.model_copy(update={"duration_s": duration})
    sink = producer = None
    if kafka and not files_only:
        from netpilot import catalog
        from netpilot.kafka.producer import KafkaProducer
        from netpilot.settings import KafkaSettings

        ks = KafkaSettings(bootstrap_servers=kafka, topic_prefix=topic_prefix)
        producer = KafkaProducer(ks)
        sink = LinkStatsSink(producer, ks.topic(catalog.LINK_STATS))
    host, _, port = netflow.rpartition(":")
    shost, _, sport = sflow.rpartition(":")
    sim = Simulator(
        sc,
        out,
        (host, int(port)),
        (shost, int(sport)),
        realtime=not fast,
        link_stats_sink=sink,
        pcap_path=out / "datagrams.pcap" if pcap else None,
    )
    if routers is not None:
        import yaml

        from netpilot.rib import rib_reader
        from producers.simulator.run import RibSteering

        spec = yaml.safe_load(routers.read_text()) or {}
        readers = {name: rib_reader(r["kind"], Path(r["socket"])) for name, r in spec.get("routers", {}).items()}
        sim.steering = RibSteering(sim.model, readers, str(spec.get("community", "64496:666")))
    inv, routes = sim.write_network_files()
    typer.echo(f"inventory: {inv}\nroutes:    {routes}", err=True)
    if files_only:
        return
    stats = sim.run()
    if producer is not None:
        producer.flush()
    links, prefixes = sim.write_truth()
    typer.echo(
        json.dumps(
            {
                "steps": stats.steps,
                "datagrams": stats.datagrams,
                "records": stats.records,
                "bytes_true": stats.bytes_true,
                "link_stats": stats.link_stats,
                "max_lag_s": round(stats.lag_s, 3),
                "steered_prefixes": sim.steering.steered if sim.steering else None,
                "truth_links": str(links),
                "truth_prefixes": str(prefixes),
            }
        )
    )
