"""A ClickHouse store (chDB, or a server: tests/backends.py) shaped and filled like
production, for the panel-query and report tests.

How each table is filled (all through project code; nothing hand-written but the scenario):

* the schema: ``sinks.clickhouse.migrations.migrate`` (tables, TTLs, rollup views);
* ``flows_raw`` (and through the materialized views ``flows_1m/5m/1h``): a short
  ``examples/simulator/demo.yaml`` run with ``--pcap`` (fewer flows per second, its clock put
  just before *now*), the pcap decoded by the collector's ``Decoder`` and ``Enricher``,
  encoded as flows/1, decoded by the sink's ``convert`` and inserted with the sink client's
  ``insert_arrow`` and a dedup token - the sink's own insert path, without Kafka;
* ``link_stats``: the simulator's counters (its ``LinkStatsSink`` given an in-memory producer
  seam instead of Kafka), converted by the sink's ``convert``;
* ``link_inventory``: link-inventory/1 records of the scenario's links (see _link_inventory);
* ``link_utilisation``: ``streams.utilisation.utilisation`` per link and 10 s window, from
  the decoded flows and the counter readings;
* ``recommendations`` / ``cycle_summaries``: the real planner over
  tests/grafana/autopilot_scenario.yaml (same PoP and link ids), times shifted onto the run;
* ``autopilot_applied``: the one stand-in. No injector runs here (the BGP injector in
  sinks/bgp/ needs routers), so :func:`_applied` writes what an injector that installs every
  ADD/REFRESH and removes every WITHDRAW would read back ``READBACK_S`` later, converted and
  inserted by the sink's ``convert`` with that time as the record's Kafka timestamp. The
  scenario ends with a WITHDRAW, so at the end nothing is installed (one "removed" row).
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa
import yaml

from netpilot.wire import flows as wire_flows
from netpilot.wire.autopilot import Recommendation
from netpilot.wire.injector import AppliedOverride
from netpilot.wire.links import LinkInventory, LinkStats
from producers.collector.decode.decoder import Decoder, DecoderOptions
from producers.collector.enrich import Enricher
from producers.collector.inventory import Inventory
from producers.collector.pcapfile import CaptureStats, read_datagrams
from producers.simulator.run import LinkStatsSink, Simulator
from producers.simulator.scenario import load_scenario
from sinks.clickhouse import convert
from sinks.clickhouse.client import ClickHouseClient
from sinks.clickhouse.migrations import migrate
from sinks.clickhouse.settings import Retention
from streams.utilisation import UtilisationSpec, utilisation

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "examples" / "simulator" / "demo.yaml"
AUTOPILOT_SCENARIO = Path(__file__).resolve().parent / "autopilot_scenario.yaml"
DB = "netpilot"
WINDOW_S = 10.0
FLOWS_PER_S = 300
DURATION_S = 180.0
READBACK_S = 5.0


@dataclass
class Store:
    dsn: str
    start_s: float
    end_s: float
    sim_dir: Path
    truth_links: pl.DataFrame
    """Simulator ground truth: bytes per link over the whole run (pop, link_id, bytes)."""
    flow_rows: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    messages: dict[str, list] = field(default_factory=dict)  # type: ignore[type-arg]
    """The wire messages inserted, by catalog topic id (not flows): to publish them to Kafka."""
    applied: list[tuple[str, AppliedOverride | None, float]] = field(default_factory=list)
    """applied-override/1 records in order: (key, value or None for a tombstone, when)."""

    def client(self) -> ClickHouseClient:
        return ClickHouseClient(self.dsn)


class _CapturingProducer:
    """Producer seam for the simulator's LinkStatsSink: keeps the encoded messages."""

    def __init__(self) -> None:
        self.values: list[bytes] = []

    def produce(self, topic: str, value: bytes, key: str | None = None, headers: object = None) -> None:
        self.values.append(value)

    def poll(self, timeout: float) -> int:
        return 0


def _collector_inventory(sim_dir: Path, scenario) -> Inventory:  # type: ignore[no-untyped-def]
    routes = yaml.safe_load((sim_dir / "routes.yaml").read_text())["routes"]
    dst_as = {r["prefix"]: r["as_path"][-1] for r in routes}
    return Inventory.model_validate(
        {
            "pops": [
                {
                    "name": p.name,
                    "routers": [
                        {
                            "name": r.name,
                            "exporter": r.exporter,
                            "sampling_rate": r.sampling_rate,
                            "links": [{"link_id": link.link_id, "if_index": link.if_index} for link in r.links],
                        }
                        for r in p.routers
                    ],
                }
                for p in scenario.pops
            ],
            "routes": [{"prefix": p, "dst_as": a} for p, a in dst_as.items()],
        }
    )


def _simulate(sim_dir: Path, start_ms: int) -> tuple[object, list[LinkStats]]:
    sc = load_scenario(DEMO).model_copy(update={"flows_per_s": FLOWS_PER_S, "duration_s": DURATION_S})
    producer = _CapturingProducer()
    # A socket we own as the "collector", so the datagrams reach nobody else's collector.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        addr = sink.getsockname()
        sim = Simulator(
            sc,
            sim_dir,
            addr,
            addr,
            realtime=False,
            start_ms=start_ms,
            link_stats_sink=LinkStatsSink(producer, "link-stats"),
            pcap_path=sim_dir / "datagrams.pcap",
        )
        sim.write_network_files()
        sim.run()
        sim.write_truth()
    return sc, [LinkStats.decode(v) for v in producer.values]


def _link_inventory(scenario) -> list[LinkInventory]:  # type: ignore[no-untyped-def]
    # producers.inventory.load rejects the simulator's inventory.yaml (no snmp: targets, the
    # simulator publishes counters itself), so the records are built from the scenario.
    return [
        LinkInventory(
            pop=p.name,
            link_id=link.link_id,
            router=r.name,
            exporter=r.exporter,
            if_index=link.if_index,
            capacity_bps=link.capacity_bps,
            peer_asn=link.peer_asn,
            peer_type=link.peer_type,
        )
        for p, r, link in scenario.links()
    ]


def _decode_flows(sim_dir: Path, scenario) -> pa.Table:  # type: ignore[no-untyped-def]
    enricher = Enricher(_collector_inventory(sim_dir, scenario))
    decoder = Decoder(DecoderOptions(sampling_rate_by_exporter=enricher.sampling_defaults))
    items, batch = [], []

    def flush() -> None:
        result = decoder.decode(batch)
        batch.clear()
        if result.n:
            table = result.table(enricher.enrich(result.columns).columns)
            # through the wire format and the sink's decoder, as a Kafka message would go
            items.append(convert.decode("flows", len(items), b"", wire_flows.encode_flows(table)))

    for d in read_datagrams(sim_dir / "datagrams.pcap", CaptureStats()):
        batch.append((d.src, d.payload, d.ts_ms))
        if len(batch) >= 5000:
            flush()
    flush()
    return convert.to_arrow("flows", items)


def _utilisation(
    flows: pa.Table, stats: list[LinkStats], links: list[LinkInventory], start_s: float, end_s: float
) -> list:  # type: ignore[type-arg]
    df = pl.from_arrow(flows.select(["time_received", "link_id", "bytes_scaled"]))
    assert isinstance(df, pl.DataFrame)
    per_window = (
        df.with_columns(
            pl.col("link_id").cast(pl.String),
            (pl.col("time_received").dt.epoch("s") // int(WINDOW_S) * int(WINDOW_S)).alias("w"),
        )
        .group_by("link_id", "w")
        .agg(pl.col("bytes_scaled").sum())
    )
    by_key = {(r["link_id"], r["w"]): r["bytes_scaled"] for r in per_window.iter_rows(named=True)}
    readings: dict[str, list[tuple[float, float, float]]] = {}
    for s in stats:
        if s.out_bps is not None and s.interval_s:
            readings.setdefault(s.link_id or "", []).append((s.ts, s.interval_s, s.out_bps))
    out = []
    # whole windows inside the run only: like streams, never publish a half-observed window
    first = int(-(-start_s // WINDOW_S) * WINDOW_S)
    for link in links:
        for w in range(first, int(end_s - WINDOW_S) + 1, int(WINDOW_S)):
            out.append(
                utilisation(
                    link,
                    float(w),
                    WINDOW_S,
                    int(by_key.get((link.link_id, w), 0)),
                    readings.get(link.link_id, []),
                    UtilisationSpec(),
                )
            )
    return out


def _autopilot(start_s: float) -> tuple[list, list]:  # type: ignore[type-arg]
    from streams.autopilot import explain
    from streams.autopilot import scenario as scn

    spec = scn.load(AUTOPILOT_SCENARIO, None)
    recs, cycles = [], []
    for cycle, result in scn.run(spec, None):
        for r in explain.recommendations(result, cycle.snapshot, cycle.policy):
            shift = start_s - 1767225600
            recs.append(
                r.model_copy(
                    update={
                        "generated_at": r.generated_at + shift,
                        "valid_until": r.valid_until + shift,
                        "hold_until": None if r.hold_until is None else r.hold_until + shift,
                    }
                )
            )
        s = explain.summary(result)
        cycles.append(s.model_copy(update={"generated_at": s.generated_at + start_s - 1767225600}))
    return recs, cycles


def _applied(recs: list[Recommendation], links: list[LinkInventory]) -> list[tuple[str, AppliedOverride | None, float]]:
    routers = {pop: tuple(sorted({x.router for x in links if x.pop == pop})) for pop in {x.pop for x in links}}
    since: dict[str, float] = {}
    out: list[tuple[str, AppliedOverride | None, float]] = []
    for r in sorted(recs, key=lambda r: (r.generated_at, r.rank)):
        at = r.generated_at + READBACK_S
        if r.action == "WITHDRAW":
            since.pop(r.key(), None)
            out.append((r.key(), None, at))
            continue
        # the attributes the injector announces come from the recommendation's BGP hint
        local_pref, communities = r.bgp_hint.get("local_pref"), r.bgp_hint.get("communities", ())
        out.append(
            (
                r.key(),
                AppliedOverride(
                    pop=r.pop,
                    prefix=r.prefix,
                    link_id=r.to.link_id,
                    next_hop=r.to.next_hop or "",
                    routers=routers.get(r.pop, ()),
                    local_pref=local_pref if isinstance(local_pref, int) else None,
                    communities=tuple(map(str, communities)) if isinstance(communities, (list, tuple)) else (),
                    recommendation_id=r.id,
                    since=since.setdefault(r.key(), at),
                    confirmed_at=at,
                ),
                at,
            )
        )
    return out


def _insert_applied(client: ClickHouseClient, records: list[tuple[str, AppliedOverride | None, float]]) -> int:
    items = [
        convert.decode("applied_overrides", i, key.encode(), None if m is None else m.encode(), at)
        for i, (key, m, at) in enumerate(records)
    ]
    data = convert.to_arrow("applied_overrides", items)
    client.insert_arrow(f"{DB}.autopilot_applied", data, "grafana-test/autopilot_applied")
    return data.num_rows


def _insert(client: ClickHouseClient, topic_id: str, table: str, messages: list) -> int:  # type: ignore[type-arg]
    items = [
        convert.decode(topic_id, i, f"{m.pop}|{getattr(m, 'link_id', '')}".encode(), m.encode())
        for i, m in enumerate(messages)
    ]
    data = convert.to_arrow(topic_id, items)
    client.insert_arrow(f"{DB}.{table}", data, f"grafana-test/{table}")
    return data.num_rows


def build_store(root: Path, dsn: str) -> Store:
    """Simulate (files under ``root``), decode, migrate and fill the ClickHouse at ``dsn``
    (chDB or a server); returns the store (its client is closed)."""
    sim_dir = root / "sim"
    now = time.time()
    start_s = float(int(now - DURATION_S - 60))
    scenario, stats = _simulate(sim_dir, int(start_s * 1000))
    flows = _decode_flows(sim_dir, scenario)
    links = _link_inventory(scenario)
    util = _utilisation(flows, stats, links, start_s, start_s + DURATION_S)
    recs, cycles = _autopilot(start_s)

    store = Store(
        dsn,
        start_s,
        start_s + DURATION_S,
        sim_dir,
        pl.read_csv(sim_dir / "truth_links.csv").group_by("pop", "link_id").agg(pl.col("bytes").sum()),
        messages={
            "link_stats": stats,
            "link_inventory": links,
            "link_utilisation": util,
            "recommendations": recs,
            "cycle_summaries": cycles,
        },
        applied=_applied(recs, links),
    )
    client = store.client()
    try:
        migrate(client, DB, Retention(), dedup_window=1000)
        step = 100_000
        for i in range(0, flows.num_rows, step):
            client.insert_arrow(f"{DB}.flows_raw", flows.slice(i, step), f"grafana-test/flows/{i}")
        store.flow_rows = flows.num_rows
        store.counts = {topic: _insert(client, topic, topic, msgs) for topic, msgs in store.messages.items()}
        store.counts["applied_overrides"] = _insert_applied(client, store.applied)
    finally:
        client.close()
    return store


__all__ = ["Store", "build_store", "DB"]
