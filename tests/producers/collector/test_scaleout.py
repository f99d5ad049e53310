"""Collectors sharing one port (SO_REUSEPORT) and their templates (docs/collector.md, "Scale-out").

The kernel hashes each exporter session (source address and port) to one of the sockets on
the port; when a collector stops or dies its sessions move to the others, which decode them
with the templates the first one learned (the templates topic, followed live) -- exporters
re-send templates only every few seconds or packets, and here never again.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from netpilot import catalog
from netpilot.dev.pipeline import Child, free_port
from netpilot.kafka.producer import KafkaProducer
from netpilot.obs.metrics import sample_value
from netpilot.settings import KafkaSettings, MetricsSettings
from netpilot.wire.flows import decode_flows
from netpilot.wire.templates import ExporterTemplate, template_key
from producers.collector.service import CollectorService
from producers.collector.settings import CollectorSettings
from tests.producers.collector.decode.builders import field_specs, ipfix, ipfix_set
from tests.producers.collector.test_service import INVENTORY, read

# IPFIX template 300: src, dst, src port, dst port, proto, egress if, octets, packets. The
# packet count carries a flow's id (octets 100 per packet: plausible), so the flows on the
# topic say exactly which records arrived, and how often.
FIELDS = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (14, 4), (1, 8), (2, 8)]
REC = struct.Struct(">4s4sHHBIQQ")
SESSIONS = 16


def template(fields: list[tuple[int, int]] = FIELDS) -> bytes:
    return ipfix([ipfix_set(2, struct.pack(">HH", 300, len(fields)) + field_specs(fields))], domain=3)


def numbered(ids: range | list[int], out_if: int = 7) -> bytes:
    recs = b"".join(
        REC.pack(bytes([192, 0, 2, 1]), bytes([198, 51, 100, 10]), 1000, 443, 6, out_if, 100 * (i + 1), i + 1)
        for i in ids
    )
    return ipfix([ipfix_set(300, recs)], domain=3, export_time=int(time.time()))


def flow_ids(kafka: KafkaSettings, until: int, timeout: float = 30.0) -> Counter[int]:
    """Flow id -> times it is on the flows topic."""
    ids: Counter[int] = Counter()
    for m in read(kafka, catalog.FLOWS, until=until, timeout=timeout):
        ids.update(p - 1 for p in decode_flows(m.value()).column("packets").to_pylist())
    return ids


def sessions(n: int = SESSIONS) -> list[socket.socket]:
    out = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        out.append(s)
    return out


def traffic_for(seconds: float) -> None:
    """Let the exporters' thread send for this long (a duration of traffic, not a wait for
    a condition)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.05)


def received(registry: CollectorRegistry) -> float:
    return sample_value(registry, "netpilot_collector_received_datagrams_total", {"exporter": "127.0.0.1"}) or 0.0


@pytest.fixture
def shared(kafka_settings: KafkaSettings, tmp_path: Path) -> CollectorSettings:
    inv = tmp_path / "inventory.yaml"
    inv.write_text(INVENTORY)
    return CollectorSettings(
        kafka=kafka_settings,
        listen_address="127.0.0.1",
        netflow_port=free_port(socket.SOCK_DGRAM),
        sflow_port=0,
        inventory_file=inv,
        batch_max_ms=50,
        metrics=MetricsSettings(enabled=False),
    )


def test_survivor_decodes_the_sessions_of_a_stopped_collector_with_their_shared_templates(
    shared: CollectorSettings,
) -> None:
    regs = [CollectorRegistry(), CollectorRegistry()]
    first, second = (CollectorService(shared, r) for r in regs)
    first.start()
    second.start()
    exporters = sessions()
    try:
        assert first.ports[0] == second.ports[0] == shared.netflow_port
        # every session sends its template once, then data: each collector learns the
        # templates of the sessions the kernel gave it
        for i, s in enumerate(exporters):
            s.sendto(template(), ("127.0.0.1", shared.netflow_port))
            s.sendto(numbered([i]), ("127.0.0.1", shared.netflow_port))
        assert sum(flow_ids(shared.kafka, until=SESSIONS).values()) == SESSIONS
        counts = [received(r) for r in regs]
        assert sum(counts) == 2 * SESSIONS
        assert all(counts), f"the kernel gave every session to one collector: {counts}"

        # the second learns the first's templates from the topic while both run
        learned_by_first = counts[0] // 2
        deadline = time.monotonic() + 20
        while (
            time.monotonic() < deadline
            and (sample_value(regs[1], "netpilot_collector_template_events_total", {"event": "shared"}) or 0)
            < learned_by_first
        ):
            time.sleep(0.05)
        # an older copy of one of the second's templates (another definition) comes late:
        # not newer than what the second learned from the exporter, so it is ignored
        topic = shared.kafka.topic(catalog.EXPORTER_TEMPLATES)
        port = exporters[0].getsockname()[1]
        stale = ExporterTemplate(
            exporter="127.0.0.1",
            observation_domain=3,
            template_id=300,
            version=10,
            definition_hex=(struct.pack(">HH", 300, 2) + field_specs(FIELDS[:2])).hex(),
            received_at=time.time() - 60,
            source_port=port,
        )
        producer = KafkaProducer(shared.kafka)
        producer.produce(
            topic, stale.encode(), key=template_key("127.0.0.1", 3, 300, port), headers=ExporterTemplate.headers()
        )
        producer.flush()
        stale_before = [
            sample_value(r, "netpilot_collector_template_events_total", {"event": "stale"}) or 0 for r in regs
        ]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not all(
            (sample_value(r, "netpilot_collector_template_events_total", {"event": "stale"}) or 0) > b
            for r, b in zip(regs, stale_before)
        ):
            time.sleep(0.05)
        for r, before in zip(regs, stale_before):  # both had a newer one (one from the wire)
            assert (sample_value(r, "netpilot_collector_template_events_total", {"event": "stale"}) or 0) > before

        first.stop()  # its sockets close: the kernel moves its sessions to the second
        for i, s in enumerate(exporters):
            s.sendto(numbered(range(100 + 4 * i, 104 + 4 * i)), ("127.0.0.1", shared.netflow_port))
        ids = flow_ids(shared.kafka, until=SESSIONS * 5)
        expected = set(range(SESSIONS)) | {100 + 4 * i + k for i in range(SESSIONS) for k in range(4)}
        assert set(ids) == expected and set(ids.values()) == {1}
        assert received(regs[1]) == counts[1] + SESSIONS  # all of them, after the move
        assert not sample_value(regs[1], "netpilot_collector_flows_dropped_total", {"reason": "no_template"})
        # every template the first had learned came to the second from the topic
        assert (sample_value(regs[1], "netpilot_collector_template_events_total", {"event": "shared"}) or 0) >= (
            learned_by_first
        )
    finally:
        first.stop()
        second.stop()
        for s in exporters:
            s.close()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_sigkill_of_one_of_two_collectors_loses_only_its_open_pass(shared: CollectorSettings, tmp_path: Path) -> None:
    """Two `netpilot collector run` processes on one port; exporters send numbered flows
    without pause; one collector is SIGKILLed. Every flow sent after the kill is published
    once (the survivor decodes the dead one's sessions with the templates it learned from
    the topic), no flow twice, and what is lost is what the dead one held: its sessions'
    last moments before the kill."""
    cfg = tmp_path / "collector.yaml"
    k = shared.kafka
    cfg.write_text(
        yaml.safe_dump(
            {
                "kafka": {"bootstrap_servers": k.bootstrap_servers, "topic_prefix": k.topic_prefix},
                "log": {"format": "json"},
                "collector": {
                    "listen_address": "127.0.0.1",
                    "netflow_port": shared.netflow_port,
                    "sflow_port": 0,
                    "inventory_file": str(shared.inventory_file),
                    "batch_max_ms": 100,
                },
            }
        )
    )
    children = []
    for name in ("collector-1", "collector-2"):
        port = free_port()
        env = {"PYTHONUNBUFFERED": "1", "NETPILOT_COLLECTOR__METRICS__LISTEN": f"127.0.0.1:{port}"}
        children.append(Child(name, ["collector", "run", "--config", str(cfg)], env, tmp_path / f"{name}.log", port))
    exporters = sessions()
    stop = threading.Event()
    sent: list[tuple[int, int, float]] = []  # (session, flow id, monotonic time sent)
    try:
        deadline = time.monotonic() + 90
        while not all(c.healthy() for c in children):
            assert time.monotonic() < deadline, "\n".join(c.tail() for c in children)
            assert all(c.alive() for c in children), "\n".join(c.tail() for c in children)
            time.sleep(0.1)
        for s in exporters:  # templates once, never again
            s.sendto(template(), ("127.0.0.1", shared.netflow_port))

        def exporter_loop() -> None:
            next_id = 0
            while not stop.is_set():
                for i, s in enumerate(exporters):
                    s.sendto(numbered([next_id]), ("127.0.0.1", shared.netflow_port))
                    sent.append((i, next_id, time.monotonic()))
                    next_id += 1
                time.sleep(0.02)

        sender = threading.Thread(target=exporter_loop, daemon=True)
        sender.start()
        # both collectors own sessions and the survivor has every template of the other
        deadline = time.monotonic() + 60
        while True:
            got = [c.sample("netpilot_collector_received_datagrams_total") or 0 for c in children]
            shared_in = children[1].sample("netpilot_collector_template_events_total", event="shared") or 0
            learned = children[0].sample("netpilot_collector_template_events_total", event="learned") or 0
            if all(got) and learned and shared_in >= learned:
                break
            assert time.monotonic() < deadline, f"received {got}, learned {learned}, shared {shared_in}"
            time.sleep(0.1)
        traffic_for(1.0)  # on both
        children[0].kill()
        killed_at = time.monotonic()
        traffic_for(3.0)  # after the kill: on the survivor only
        stop.set()
        sender.join(5)
        ids = flow_ids(k, until=sum(1 for _, _, t in sent if t > killed_at), timeout=60)
        after = {fid for _, fid, t in sent if t > killed_at}
        assert after and after <= set(ids), f"{len(after - set(ids))} flows sent after the kill missing"
        assert set(ids.values()) == {1}, "a flow published twice"
        lost = [(sess, fid, t) for sess, fid, t in sent if fid not in ids]
        # lost: only from the killed collector's sessions, only from just before the kill
        assert all(killed_at - t < 2.0 for _, _, t in lost), f"lost long before the kill: {lost[:5]}"
        assert not (children[1].sample("netpilot_collector_flows_dropped_total", reason="no_template") or 0)
    finally:
        stop.set()
        for c in children:
            if c.alive():
                c.kill()
        for s in exporters:
            s.close()
