"""The simulator emits real, decodable datagrams whose totals match its own ground truth."""

from __future__ import annotations

import subprocess
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from netpilot import catalog
from netpilot.kafka.consumer import BatchConsumer
from netpilot.kafka.producer import KafkaProducer
from netpilot.settings import KafkaSettings
from netpilot.wire.links import LinkStats
from producers.simulator.model import NetworkModel
from producers.simulator.run import LinkStatsSink, Simulator
from producers.simulator.scenario import load_scenario
from tests.conftest import REPO

SCENARIO = REPO / "examples" / "simulator" / "demo.yaml"
START_MS = 1_790_000_000_000
NF_PORT, SF_PORT = 29055, 29343


def run_sim(out: Path, duration: float, **kw) -> Simulator:
    sc = load_scenario(SCENARIO).model_copy(update={"duration_s": duration})
    sim = Simulator(
        sc,
        out,
        ("127.0.0.1", NF_PORT),
        ("127.0.0.1", SF_PORT),
        realtime=False,
        start_ms=START_MS,
        pcap_path=out / "d.pcap",
        **kw,
    )
    sim.write_network_files()
    sim.run()
    sim.write_truth()
    return sim


def tshark_fields(pcap: Path, *fields: str, display: str) -> list[list[str]]:
    # The sampled packet headers inside sFlow are truncated by design: keep tshark from
    # dissecting their (absent) TCP payloads, which it would flag as malformed.
    cmd = [
        "tshark",
        "-r",
        str(pcap),
        "-d",
        f"udp.port=={NF_PORT},cflow",
        "-d",
        f"udp.port=={SF_PORT},sflow",
        "--disable-protocol",
        "tcp",
        "-Y",
        display,
        "-T",
        "fields",
        "-E",
        "separator=;",
    ]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout
    return [line.split(";") for line in out.splitlines() if line]


@pytest.fixture(scope="module")
def sim5(tmp_path_factory: pytest.TempPathFactory) -> Simulator:
    return run_sim(tmp_path_factory.mktemp("sim"), 5)


def truth_by_router(sim: Simulator) -> dict[str, int]:
    t = pl.read_csv(sim.out_dir / "truth_links.csv")
    out: dict[str, int] = defaultdict(int)
    for link_id, b in zip(t["link_id"], t["bytes"]):
        out[link_id.split(":")[0]] += b
    return out


def test_tshark_decodes_every_datagram(sim5: Simulator) -> None:
    assert not tshark_fields(
        sim5.out_dir / "d.pcap", "frame.number", display="_ws.malformed || _ws.expert.severity >= error"
    )
    frames = tshark_fields(sim5.out_dir / "d.pcap", "frame.number", display="cflow || sflow")
    assert len(frames) == sim5.stats.datagrams > 100


def test_unsampled_ipfix_bytes_equal_truth_exactly(sim5: Simulator) -> None:
    rows = tshark_fields(sim5.out_dir / "d.pcap", "cflow.octets", display="ip.src==127.0.0.11 && cflow")
    total = sum(int(v) for r in rows for v in r[0].split(",") if v)
    assert total == truth_by_router(sim5)["ams1-r1"]


def test_sampled_netflow9_and_sflow_within_sampling_error(sim5: Simulator) -> None:
    truth = truth_by_router(sim5)
    nf = tshark_fields(sim5.out_dir / "d.pcap", "cflow.octets", display="ip.src==127.0.0.21 && cflow")
    nf_scaled = 100 * sum(int(v) for r in nf for v in r[0].split(",") if v)
    assert abs(nf_scaled / truth["fra1-r1"] - 1) < 0.01
    sf = tshark_fields(
        sim5.out_dir / "d.pcap",
        "sflow.flow_sample.sampling_rate",
        "sflow_245.header.frame_length",
        display="ip.src==127.0.0.12 && sflow",
    )
    sf_scaled = sum(int(rate) * int(fl) for r in sf for rate, fl in zip(r[0].split(","), r[1].split(",")))
    assert abs(sf_scaled / truth["ams1-r2"] - 1) < 0.05


def test_deterministic(tmp_path: Path, sim5: Simulator) -> None:
    again = run_sim(tmp_path, 5)
    assert (tmp_path / "truth_prefixes.csv").read_bytes() == (sim5.out_dir / "truth_prefixes.csv").read_bytes()
    import dpkt

    def payloads(p: Path) -> list[bytes]:
        with open(p, "rb") as fh:
            return [dpkt.ethernet.Ethernet(buf).data.data.data for _, buf in dpkt.pcap.Reader(fh)]

    assert payloads(tmp_path / "d.pcap") == payloads(sim5.out_dir / "d.pcap")
    assert again.stats.records == sim5.stats.records


def test_scripted_events_shape_the_truth() -> None:
    sc = load_scenario(SCENARIO)
    model = NetworkModel(sc)
    ams, fra = model.pops

    def link_bytes(pm, t: float, link_id: str) -> int:
        st = model.step(pm, t)
        li = [l.link_id for _, l in pm.links].index(link_id)
        return int(st.bytes[st.link == li].sum())

    pni_before, pni_surge = link_bytes(ams, 50, "ams1-r1:pni-1"), link_bytes(ams, 70, "ams1-r1:pni-1")
    assert pni_surge > 1.6 * pni_before  # surge x1.75 on its native prefixes
    assert pni_surge * 8 > 0.92 * 10e9  # and it loads the 10G PNI past its trigger
    assert link_bytes(ams, 165, "ams1-r2:ix-1") == 0  # link down
    assert link_bytes(ams, 176, "ams1-r2:ix-1") > 0  # and back
    assert link_bytes(fra, 125, "fra1-r1:pni-2") < 0.8 * link_bytes(fra, 110, "fra1-r1:pni-2")  # routes withdrawn
    # traffic is conserved: what leaves the PNI during the withdrawal goes to transit
    st1, st2 = model.step(fra, 110), model.step(fra, 125)
    assert (st2.link >= 0).sum() == (st1.link >= 0).sum()
    # every prefix egresses only where a route exists
    for pm in model.pops:
        st = model.step(pm, 10)
        ok = st.link >= 0
        assert pm.reach[st.link[ok], np.nonzero(ok)[0]].all()


def test_link_counters_published_to_kafka_match_truth(tmp_path: Path, kafka_settings: KafkaSettings) -> None:
    producer = KafkaProducer(kafka_settings)
    sink = LinkStatsSink(producer, kafka_settings.topic(catalog.LINK_STATS))
    sc = load_scenario(SCENARIO).model_copy(update={"duration_s": 30})
    sim = Simulator(
        sc,
        tmp_path,
        ("127.0.0.1", NF_PORT),
        ("127.0.0.1", SF_PORT),
        realtime=False,
        start_ms=START_MS,
        link_stats_sink=sink,
    )
    sim.run()
    producer.flush()
    sim.write_truth()
    consumer = BatchConsumer(kafka_settings, "sim-test", [kafka_settings.topic(catalog.LINK_STATS)])
    msgs = []
    deadline = time.time() + 20
    expected = 4 * len(sc.links())  # at t = 0, 10, 20 and 30 s (every stats_interval_s)
    while len(msgs) < expected and time.time() < deadline:
        msgs += consumer.poll_batch(100, 0.5)
    consumer.close()
    stats = [LinkStats.decode(m.value()) for m in msgs]
    assert len(stats) == expected
    assert {m.key().decode() for m in msgs} == {"ams1", "fra1"}
    truth = pl.read_csv(tmp_path / "truth_links.csv")
    for link_id in {s.link_id for s in stats}:
        mine = sorted((s for s in stats if s.link_id == link_id), key=lambda s: s.ts)
        delta = (mine[-1].out_octets - mine[0].out_octets) % 2**64
        t0, t1 = mine[0].ts - START_MS / 1000, mine[-1].ts - START_MS / 1000
        want = truth.filter((pl.col("link_id") == link_id) & (pl.col("t") >= t0) & (pl.col("t") < t1))["sent"].sum()
        assert delta == want, link_id
        assert mine[-1].out_bps == pytest.approx(
            truth.filter((pl.col("link_id") == link_id) & (pl.col("t") >= t1 - 10) & (pl.col("t") < t1))["sent"].sum()
            * 8
            / 10
        )


def test_network_files_are_read_by_inventory_routes_and_collector(sim5: Simulator) -> None:
    """One inventory and one routes file serve every component."""
    from producers.collector.inventory import load_inventory as collector_inventory
    from producers.inventory.load import load_inventory
    from producers.routes.source import load_routes_file

    inv_file, routes_file = sim5.out_dir / "inventory.yaml", sim5.out_dir / "routes.yaml"
    inv = load_inventory(inv_file)
    assert sorted(link.link_id for link in inv.links) == sorted(l.link_id for _, _, l in sim5.sc.links())
    assert inv.routers == ()  # counters: external -- the simulator publishes link-stats itself
    routes = load_routes_file(routes_file)
    assert {r.link_id for r in routes} == {l.link_id for _, _, l in sim5.sc.links()}
    col = collector_inventory(inv_file, routes_file)
    assert {r.exporter for _, r in col.routers()} == {r.exporter for p in sim5.sc.pops for r in p.routers}
    assert len(col.routes) == len({r.prefix for r in routes})
