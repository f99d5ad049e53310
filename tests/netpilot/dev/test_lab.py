"""The routing lab (``netpilot dev lab``): the kernel forwards by BGP, and an override sent
through the real injector (ExaBGP in the lab's nms namespace, iBGP to FRR) moves the packets
of one prefix from the PNI veth to the transit veth, and back after the withdraw.

The proof is the pop's transmit counters: traffic from ``src`` to the prefix shows up on the
interface the kernel chose, not only in a routing table.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer

from netpilot import catalog
from netpilot.dev.lab import LAB_POP as POP
from netpilot.dev.lab import PEERS, PREFIXES, ROUTER, SNMP_COMMUNITY, Lab, host, peer, preferred, publish_lab_pop
from netpilot.settings import KafkaSettings, MetricsSettings, load_settings
from netpilot.wire.flows import addr_to_str, decode_flows
from netpilot.wire.routes import Route
from producers.collector.service import CollectorService
from producers.collector.settings import CollectorSettings
from producers.routes.bmp.rib import Change
from producers.routes.bmp.service import BmpCollectorService
from producers.routes.bmp.settings import BmpSettings
from sinks.bgp.service import InjectorService
from sinks.bgp.settings import InjectorSettings
from tests.sinks.bgp.lab import rec, send, wait_until

pytestmark = [pytest.mark.slow]
COMMUNITY = "64496:666"
MOVED = "198.18.10.0/24"  # PNI first, transit as the alternate
KEPT = "198.18.11.0/24"  # PNI first, never overridden here
PCAP_BLOCK = 256 << 10  # what a live capture may hold back at the end of a stream (see below)
IP_SHARE = 0.98  # IP bytes / frame bytes of the lab's 1200-byte UDP datagrams is 0.989


@pytest.fixture
def routing_lab() -> Iterator[Lab]:
    lab = Lab(f"nl{uuid.uuid4().hex[:5]}-")
    try:
        lab.up()
        yield lab
    finally:
        lab.down()
        assert not lab.namespaces(), "lab namespaces left behind"
        assert not lab.dir.exists(), "lab folder left behind"


def sent_through(lab: Lab, destination: str, mbit: float = 4, seconds: float = 2, port: int = 5201) -> dict[str, int]:
    """Bytes each egress veth of the pop transmitted while ``src`` sent a UDP stream to ``destination``."""
    before = lab.tx_bytes()
    proc = lab.send(destination, mbit, seconds, port=port)
    assert proc.wait(timeout=seconds + 30) == 0, "iperf3 client failed"
    after = lab.tx_bytes()
    return {p.pop_if: after[p.pop_if] - before[p.pop_if] for p in PEERS}


def test_lab_is_up_with_its_peers_and_shapers(routing_lab: Lab) -> None:
    status = routing_lab.status()
    assert status["up"] and all(status["processes"].values())  # type: ignore[union-attr]
    assert status["egress"] == {prefix: preferred(prefix).pop_if for prefix in PREFIXES}
    qdisc = subprocess.run(
        ["ip", "netns", "exec", routing_lab.ns("pop"), "tc", "qdisc", "show", "dev", "pni0"],
        capture_output=True,
        text=True,
    ).stdout
    assert "tbf" in qdisc and "20Mbit" in qdisc, qdisc
    # nothing of the lab is in the root namespace: none of its addresses on a root interface
    # (other tests' helpers may hold other addresses of these ranges there meanwhile)
    root = {
        word.split("/")[0]
        for line in subprocess.run(["ip", "-br", "addr"], capture_output=True, text=True).stdout.splitlines()
        for word in line.split()[2:]
    }
    lab_addrs = {a for peer_ in PEERS for a in (peer_.pop_addr, peer_.peer_addr, peer_.far_addr, peer_.net_addr)}
    lab_addrs |= {host(prefix) for prefix in PREFIXES}
    assert not root & lab_addrs, root & lab_addrs


def test_override_through_the_injector_moves_the_packets(
    routing_lab: Lab, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    lab, pni, transit = routing_lab, peer("pni"), peer("transit")
    # before: the PNI carries the prefix's traffic
    moved = sent_through(lab, host(MOVED))
    expected = 4e6 * 2 / 8
    assert moved["pni0"] > 0.8 * expected and moved["transit0"] < 0.05 * expected, moved

    publish_lab_pop(kafka_settings)
    settings = load_settings(
        InjectorSettings,
        overrides={
            "kafka": kafka_settings.model_dump(),
            "mode": "apply",
            "run_dir": str(tmp_path / "inj"),
            "community": COMMUNITY,
            "metrics": {"listen": "127.0.0.1:0"},
            "exabgp_netns": lab.ns("nms"),
            "routers": {
                ROUTER: {
                    "neighbor": lab.nms_peer,
                    "local_address": lab.nms_address,
                    "rib": {"kind": "frr", "socket": str(lab.frr_dir)},
                }
            },
        },
    )
    svc = InjectorService(settings)
    svc.start()
    try:
        wait_until(lambda: lab.established().get(lab.nms_address), 30, "the injector's iBGP session")
        send(
            kafka_settings,
            rec(MOVED, transit.link_id, next_hop=transit.peer_addr, from_link=pni.link_id, pop=POP),
        )
        wait_until(lambda: lab.egress(host(MOVED)) == "transit0", 30, "the kernel forwards the prefix via transit")
        assert lab.egress(host(KEPT)) == "pni0"
        moved = sent_through(lab, host(MOVED))
        assert moved["transit0"] > 0.8 * expected and moved["pni0"] < 0.05 * expected, moved
        kept = sent_through(lab, host(KEPT))
        assert kept["pni0"] > 0.8 * expected and kept["transit0"] < 0.05 * expected, kept

        send(
            kafka_settings,
            rec(MOVED, transit.link_id, action="WITHDRAW", next_hop=transit.peer_addr, from_link=pni.link_id, pop=POP),
        )
        wait_until(lambda: lab.egress(host(MOVED)) == "pni0", 30, "back on the PNI after the withdraw")
        back = sent_through(lab, host(MOVED))
        assert back["pni0"] > 0.8 * expected and back["transit0"] < 0.05 * expected, back
    finally:
        svc.stop()


def poll_out_octets(lab: Lab, tmp_path: Path) -> dict[str, int]:
    """ifHCOutOctets per link, read by the real SNMP poller (`netpilot snmp poll --once`)
    from the pop's snmpd through the lab's relay."""
    cfg = tmp_path / "snmp.yaml"
    cfg.write_text(f"snmp:\n  credentials:\n    lab: {{community: {SNMP_COMMUNITY}}}\n")
    out = subprocess.run(
        [sys.executable, "-m", "netpilot.cli", "snmp", "poll", "--once", "-c", str(cfg), "-i", str(lab.inventory_file)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    got = {}
    for line in out.stdout.splitlines():
        f = line.split()
        got[f[2]] = int(next(x for x in f if x.startswith("out="))[4:])
    return got


def test_snmp_poller_sees_the_traffic_on_the_link_the_kernel_chose(routing_lab: Lab, tmp_path: Path) -> None:
    lab = routing_lab
    before = poll_out_octets(lab, tmp_path)
    assert set(before) == {"transit-1", "pni-1", "ix-1"}
    kernel = sent_through(lab, host(MOVED), mbit=8, seconds=3)
    # Net-SNMP refreshes its interface cache every few seconds: wait for the counter to catch up
    wait_until(
        lambda: poll_out_octets(lab, tmp_path)["pni-1"] - before["pni-1"] >= kernel["pni0"],
        30,
        "ifHCOutOctets of pni0 grew by what the kernel sent",
        every=1,
    )
    after = poll_out_octets(lab, tmp_path)
    assert after["transit-1"] - before["transit-1"] < 0.05 * kernel["pni0"], (before, after)


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def flow_lab() -> Iterator[tuple[Lab, int]]:
    """A lab whose egress veths export IPFIX (softflowd) to 127.0.0.1:<port>."""
    port = _free_port(socket.SOCK_DGRAM)
    lab = Lab(f"nl{uuid.uuid4().hex[:5]}-")
    try:
        lab.up(collector_port=port)
        yield lab, port
    finally:
        lab.down()
        assert not lab.namespaces(), "lab namespaces left behind"


def test_collector_attributes_the_lab_flows_to_the_link_the_kernel_chose(
    flow_lab: tuple[Lab, int], kafka_settings: KafkaSettings
) -> None:
    lab, port = flow_lab
    svc = CollectorService(
        CollectorSettings(
            kafka=kafka_settings,
            listen_address="127.0.0.1",
            netflow_port=port,
            sflow_port=0,
            inventory_file=lab.inventory_file,
            batch_max_ms=200,
            metrics=MetricsSettings(enabled=False),
        )
    )
    svc.start()
    try:
        sent = {dst: sent_through(lab, host(dst), mbit=6, seconds=2) for dst in (MOVED, "198.18.13.0/24")}
        cfg = kafka_settings.client_config()
        cfg.update({"group.id": f"test-{uuid.uuid4().hex}", "auto.offset.reset": "earliest"})
        consumer = Consumer(cfg)
        consumer.subscribe([kafka_settings.topic(catalog.FLOWS)])
        by: dict[tuple[str, str], int] = {}

        def enough() -> bool:
            for m in consumer.consume(100, 0.5):
                if m.error() is None:
                    for r in decode_flows(m.value()).to_pylist():
                        k = (addr_to_str(r["dst_addr"]), r["link_id"])
                        by[k] = by.get(k, 0) + int(r["bytes"])
            # softflowd captures live and libpcap hands packets over by the block: the last,
            # partly filled block of a stream stays in the ring (measured: the last 200 of 1250
            # packets), so the flows may miss up to one block of the kernel's bytes. The kernel
            # counts frames, the flows IP bytes: 14 of 1242 bytes less (IP_SHARE).
            return (
                by.get((host(MOVED), "pni-1"), 0) >= IP_SHARE * sent[MOVED]["pni0"] - PCAP_BLOCK
                and by.get(("198.18.13.1", "ix-1"), 0) >= IP_SHARE * sent["198.18.13.0/24"]["ix0"] - PCAP_BLOCK
            )

        try:
            wait_until(enough, 60, "the flows of both streams, on the links the kernel used", every=0)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: kernel {sent}, flows {by}") from None
        finally:
            consumer.close()
        # IP bytes (flows) under frame bytes (the kernel's counter), and nothing of either
        # stream was attributed to another link
        assert by[(host(MOVED), "pni-1")] <= sent[MOVED]["pni0"], (by, sent)
        assert {k for k in by if k[0] in (host(MOVED), "198.18.13.1")} == {
            (host(MOVED), "pni-1"),
            ("198.18.13.1", "ix-1"),
        }, by
    finally:
        svc.stop()


@pytest.fixture
def bmp_lab_router() -> Iterator[tuple[Lab, int]]:
    """A lab whose router opens a BMP session to 127.0.0.1:<port> (through the lab's relay)."""
    port = _free_port(socket.SOCK_STREAM)
    lab = Lab(f"nl{uuid.uuid4().hex[:5]}-")
    try:
        lab.up(bmp_port=port)
        yield lab, port
    finally:
        lab.down()
        assert not lab.namespaces(), "lab namespaces left behind"


def test_bmp_collector_learns_every_peers_routes_from_the_lab_router(bmp_lab_router: tuple[Lab, int]) -> None:
    lab, port = bmp_lab_router
    published: list[Change] = []
    settings = load_settings(
        BmpSettings,
        overrides={
            "listen": f"127.0.0.1:{port}",
            "inventory": str(lab.inventory_file),
            "settle_s": 3,
            "metrics": {"listen": "127.0.0.1:0"},
        },
    )
    svc = BmpCollectorService(settings, publish=published.extend)
    svc.start()
    try:
        want = {f"{POP}|{p.link_id}|{prefix}" for p in PEERS for prefix in p.prefixes}
        wait_until(lambda: {c.key for c in published if c.value is not None} >= want, 60, "every peer's routes")
        routes = {c.key: Route.decode(c.value) for c in published if c.value is not None}
        assert set(routes) == want, sorted(set(routes) - want)
        assert routes[f"{POP}|pni-1|{MOVED}"].next_hop == peer("pni").peer_addr
        assert routes[f"{POP}|transit-1|{MOVED}"].next_hop == peer("transit").peer_addr
    finally:
        svc.stop()
