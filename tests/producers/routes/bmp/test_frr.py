"""The collector against a real FRR 8.4 bgpd sending BMP, with BIRD peers announcing routes."""

from __future__ import annotations

import socket
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from netpilot import catalog
from netpilot.kafka.compacted import read_compacted
from netpilot.obs.http import MetricsServer
from netpilot.obs.metrics import sample_value
from netpilot.settings import KafkaSettings, load_settings
from netpilot.wire.routes import Route
from producers.routes.bmp.rib import Change
from producers.routes.bmp.service import BmpCollectorService
from producers.routes.bmp.settings import BmpSettings
from tests.producers.routes.bmp import bmpwriter as w
from tests.producers.routes.bmp.bmplab import BmpLab, free_port, wait_until

PEER_A = ["198.18.10.0/24", "198.18.11.0/24", "203.0.113.0/25", "2001:db8:10::/48", "2001:db8:11::/48"]
PEER_B = ["198.18.10.0/24", "198.18.12.0/24", "2001:db8:12::/48"]


@pytest.fixture
def bmp_lab() -> Iterator[BmpLab]:
    lab = BmpLab(free_port(), [("peer-a", PEER_A), ("peer-b", PEER_B)]).open()
    try:
        yield lab
    finally:
        lab.close()


def _settings(lab: BmpLab, tmp_path: Path, **over: object) -> BmpSettings:
    inventory = lab.inventory(tmp_path / "inventory.yaml", {"transit-a": "peer-a", "transit-b": "peer-b"})
    return load_settings(
        BmpSettings,
        overrides={
            "listen": f"127.0.0.1:{lab.collector_port}",
            "inventory": str(inventory),
            "settle_s": 3,
            "metrics": {"listen": "127.0.0.1:0"},
            **over,
        },
    )


def _metric(svc: BmpCollectorService, name: str, **labels: str) -> float:
    return sample_value(svc.registry, f"netpilot_bmp_{name}", labels)


def _expected(link: str, prefixes: list[str]) -> set[str]:
    return {f"lab1|{link}|{p}" for p in prefixes}


def _records(kafka: KafkaSettings) -> int:
    """Every record in the routes topic (compaction is far away: all of them are still there)."""
    topic = kafka.topic(catalog.ROUTES)
    c = Consumer({**kafka.client_config(), "group.id": f"count-{uuid.uuid4().hex[:6]}"})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts)
    finally:
        c.close()


def test_frr_peers_routes_withdrawals_peer_down_and_a_restart(
    kafka_settings: KafkaSettings, bmp_lab: BmpLab, tmp_path: Path
) -> None:
    lab, topic = bmp_lab, kafka_settings.topic(catalog.ROUTES)
    settings = _settings(lab, tmp_path, kafka=kafka_settings.model_dump())
    wait_until(lambda: lab.received("peer-a") == 5 and lab.received("peer-b") == 3, 60, "FRR has both peers' routes")
    svc = BmpCollectorService(settings)
    svc.start()
    try:
        # peer up -> a route/1 record for every prefix each peer announces
        wait_until(lambda: _metric(svc, "published_total", kind="route") == 8, 30, "8 routes published")
        wait_until(lambda: _metric(svc, "syncs_total", how="eor") == 1, 30, "sync ended by End-of-RIB")
        state = read_compacted(kafka_settings, topic)
        assert set(state) == _expected("transit-a", PEER_A) | _expected("transit-b", PEER_B)
        r = Route.decode(state["lab1|transit-a|203.0.113.0/25"])
        assert (r.next_hop, r.as_path, r.origin) == ("198.51.100.2", (64510,), "igp")  # FRR's own AS stripped
        assert Route.decode(state["lab1|transit-b|2001:db8:12::/48"]).next_hop == "2001:db8:ffff::3"

        # a peer withdrawing one prefix -> one tombstone
        lab.announce("peer-a", [p for p in PEER_A if p != "198.18.11.0/24"])
        wait_until(lambda: _metric(svc, "published_total", kind="tombstone") == 1, 30, "the withdrawal")
        assert read_compacted(kafka_settings, topic)["lab1|transit-a|198.18.11.0/24"] is None

        # a peer's session shut -> tombstones for exactly its routes
        lab.shut("peer-b")
        wait_until(lambda: _metric(svc, "published_total", kind="tombstone") == 4, 30, "peer-b's routes withdrawn")
        state = read_compacted(kafka_settings, topic)
        assert {k for k, v in state.items() if v is not None} == _expected(
            "transit-a", [p for p in PEER_A if p != "198.18.11.0/24"]
        )
        assert _metric(svc, "peer_downs_total", reason="remote-notification") == 1
        assert _metric(svc, "published_total", kind="route") == 8 and svc.health()[0]
    finally:
        svc.stop()

    # the collector restarted: meanwhile peer-a withdrew one more prefix. The new collector
    # reads the topic, FRR reconnects and resends its RIB: one tombstone, nothing else.
    lab.announce("peer-a", [p for p in PEER_A if p not in ("198.18.11.0/24", "203.0.113.0/25")])
    wait_until(lambda: lab.received("peer-a") == 3, 30, "FRR saw the withdrawal")
    before = _records(kafka_settings)
    svc = BmpCollectorService(settings)
    svc.start()
    try:
        wait_until(lambda: _metric(svc, "syncs_total", how="eor") == 1, 30, "FRR reconnected and resent its RIB")
        wait_until(lambda: _metric(svc, "published_total", kind="tombstone") == 1, 10, "the withdrawal while down")
        assert _metric(svc, "published_total", kind="route") == 0  # nothing re-published
        assert _metric(svc, "routes_total", action="announce") == 3  # what FRR resent
        assert _records(kafka_settings) == before + 1
        assert read_compacted(kafka_settings, topic)["lab1|transit-a|203.0.113.0/25"] is None

        # a peer coming back on a live session: its routes are records again
        lab.unshut("peer-b")
        wait_until(lambda: _metric(svc, "published_total", kind="route") == 3, 30, "peer-b's routes back")
        state = read_compacted(kafka_settings, topic)
        assert {k for k, v in state.items() if v is not None} == _expected(
            "transit-a", ["198.18.10.0/24", "2001:db8:10::/48", "2001:db8:11::/48"]
        ) | _expected("transit-b", PEER_B)
    finally:
        svc.stop()


def _closed_by_peer(sock: socket.socket, timeout: float = 10.0) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_bad_bmp_bytes_are_counted_and_the_frr_session_goes_on(bmp_lab: BmpLab, tmp_path: Path) -> None:
    lab = bmp_lab
    published: list[Change] = []
    svc = BmpCollectorService(_settings(lab, tmp_path), publish=published.extend)
    svc.start()
    try:
        wait_until(lambda: len(published) == 8, 60, "FRR's routes")
        port = lab.collector_port
        # a stream that cannot be framed: that connection is reset, nothing else
        with socket.create_connection(("127.0.0.1", port)) as bad:
            bad.sendall(b"\x07garbage that is not BMP at all")
            assert _closed_by_peer(bad)
        with socket.create_connection(("127.0.0.1", port)) as huge:
            huge.sendall(b"\x03\xff\xff\xff\xff\x00")
            assert _closed_by_peer(huge)
        # well-framed nonsense: each message is counted and skipped, the connection stays
        with socket.create_connection(("127.0.0.1", port)) as odd:
            odd.sendall(
                w.initiation("someone")
                + w.route_monitoring("198.51.100.77", 64577, w.update(["192.0.2.0/24"], [], w.attrs()))
                + w.bmp(w.PEER_UP, b"\x00" * 12)
                + w.bmp(42, b"?")
            )
            wait_until(lambda: _metric(svc, "malformed_total", reason="unknown-type") == 1, 10, "counted")
            odd.settimeout(0.5)
            with pytest.raises(TimeoutError):
                odd.recv(1)  # still open
        assert _metric(svc, "malformed_total", reason="bad-version") == 1
        assert _metric(svc, "malformed_total", reason="bad-length") == 1
        assert _metric(svc, "malformed_total", reason="no-peer-up") == 1
        assert _metric(svc, "malformed_total", reason="short-message") == 1
        assert _metric(svc, "session_resets_total", reason="bad-version") == 1
        # FRR's session never noticed: a withdrawal still comes through
        lab.announce("peer-b", ["198.18.10.0/24", "2001:db8:12::/48"])
        wait_until(lambda: any(c.value is None for c in published), 30, "the withdrawal")
        assert [c.key for c in published if c.value is None] == ["lab1|transit-b|198.18.12.0/24"]
        ok, why = svc.health()
        assert ok and "bmp-r1" not in why, why  # FRR's session is live (the odd one is held)
        server = MetricsServer(svc.registry, "127.0.0.1:0", svc.health).start()  # as `run` serves them
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=10) as r:
                assert r.status == 200
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as r:
                assert 'netpilot_bmp_malformed_total{reason="bad-version"} 1.0' in r.read().decode()
        finally:
            server.stop()
    finally:
        svc.stop()


def test_an_inventory_change_moves_a_peer_to_another_link(bmp_lab: BmpLab, tmp_path: Path) -> None:
    lab = bmp_lab
    published: dict[str, bytes | None] = {}
    settings = _settings(lab, tmp_path, inventory_check_s=0.2)
    svc = BmpCollectorService(settings, publish=lambda cs: published.update((c.key, c.value) for c in cs))
    svc.start()
    try:
        wait_until(lambda: len(published) == 8, 60, "FRR's routes")
        lab.inventory(settings.inventory, {"transit-a": "peer-a", "transit-c": "peer-b"})  # peer-b moved
        wait_until(lambda: _metric(svc, "session_resets_total", reason="inventory-change") == 1, 30, "reset")
        moved = {f"lab1|transit-c|{p}" for p in PEER_B}
        gone = {f"lab1|transit-b|{p}" for p in PEER_B}
        # FRR reconnects and resends; the sync end withdraws what the link no longer has
        wait_until(lambda: all(published.get(k) for k in moved), 30, "peer-b's routes on transit-c")
        wait_until(lambda: all(k in published and published[k] is None for k in gone), 30, "transit-b withdrawn")
        assert all(published[f"lab1|transit-a|{p}"] for p in PEER_A)  # peer-a's untouched
        assert _metric(svc, "inventory_reloads_total") == 1
    finally:
        svc.stop()
