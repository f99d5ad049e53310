"""The running collector against the real broker: UDP in, enriched flows batches out."""

from __future__ import annotations

import socket
import struct
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer
from prometheus_client import CollectorRegistry

from netpilot import catalog
from netpilot.kafka.producer import KafkaProducer
from netpilot.obs.metrics import sample_value
from netpilot.settings import KafkaSettings, MetricsSettings
from netpilot.wire.deadletter import DeadLetter
from netpilot.wire.flows import FlowFlags, addr_to_str, decode_flows
from netpilot.wire.links import LinkStats
from netpilot.wire.templates import ExporterTemplate
from producers.collector.decode.bounds import REFUSED, Refused
from producers.collector.service import CollectorService
from producers.collector.settings import CollectorSettings, PlausibilitySettings
from tests.producers.collector.decode import test_bounds
from tests.producers.collector.decode.builders import field_specs, ipfix, ipfix_set
from tests.producers.collector.exporters import Export

FIELDS = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (14, 4), (1, 8), (2, 8)]
# an IPFIX message 10 bytes long (truncated) and a v9 header + a flowset of length 2 (bad length)
BAD = [b"\x00\x0agarbage", b"\x00\x09" + bytes(18) + b"\x01\x00\x00\x02" + bytes(8)]
REC = struct.Struct(">4s4sHHBIQQ")

INVENTORY = """
pops:
  - name: fra1
    routers:
      - name: fra1-edge1
        exporter: 127.0.0.1
        links:
          - {link_id: fra1-transit-a, if_index: 7}
          - {link_id: fra1-pni-b, if_index: 8}
routes:
  - {prefix: 198.51.100.0/24, dst_as: 64501}
  - {prefix: 198.51.100.128/25, dst_as: 64502}
  - {prefix: "2001:db8::/32", dst_as: 64510}
"""


def template() -> bytes:
    return ipfix([ipfix_set(2, struct.pack(">HH", 300, len(FIELDS)) + field_specs(FIELDS))], domain=3)


def data(out_ifs: list[int], domain: int = 3) -> bytes:
    recs = b"".join(
        REC.pack(
            bytes([192, 0, 2, 1]),
            bytes([198, 51, 100, 10 + 150 * (i % 2)]),
            1000 + i,
            443,
            6,
            oif,
            1500 * (i + 1),
            i + 1,
        )
        for i, oif in enumerate(out_ifs)
    )
    # no time fields: the flows are stamped with the export time, which must be current
    return ipfix([ipfix_set(300, recs)], domain=domain, export_time=int(time.time()))


def counter_sample(if_index: int, out_octets: int) -> bytes:
    rec = struct.pack(
        ">IIQIIQIIIIIIQIIIIII", if_index, 6, 10_000_000_000, 1, 3, 5000, 0, 0, 0, 0, 0, 0, out_octets, 0, 0, 0, 2, 1, 0
    )
    sample = struct.pack(">III", 1, if_index, 1) + struct.pack(">II", 1, len(rec)) + rec
    return (
        struct.pack(">II4sIIII", 5, 1, bytes([127, 0, 0, 1]), 0, 1, 1000, 1)
        + struct.pack(">II", 2, len(sample))
        + sample
    )


@pytest.fixture
def settings(kafka_settings: KafkaSettings, tmp_path: Path) -> CollectorSettings:
    inv = tmp_path / "inventory.yaml"
    inv.write_text(INVENTORY)
    return CollectorSettings(
        kafka=kafka_settings,
        listen_address="127.0.0.1",
        netflow_port=0,
        sflow_port=0,
        inventory_file=inv,
        batch_max_ms=100,
        metrics=MetricsSettings(enabled=False),
    )


def send(port: int, datagrams: list[bytes], src: str = "127.0.0.1", sock: socket.socket | None = None) -> None:
    """Send from ``sock`` (one exporter session: one source port) or a new socket."""
    s = sock or socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if sock is None:
        s.bind((src, 0))
    for d in datagrams:
        s.sendto(d, ("127.0.0.1", port))
    if sock is None:
        s.close()


def read(kafka: KafkaSettings, topic: catalog.Topic, until: int, timeout: float = 30.0) -> list:  # type: ignore[type-arg]
    cfg = kafka.client_config()
    cfg.update({"group.id": f"test-{uuid.uuid4().hex}", "auto.offset.reset": "earliest"})
    c = Consumer(cfg)
    c.subscribe([kafka.topic(topic)])
    out, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for m in c.consume(100, 0.5):
                if m.error() is None:
                    out.append(m)
            if topic is catalog.FLOWS and sum(len(decode_flows(m.value())) for m in out) >= until:
                break
            if topic is not catalog.FLOWS and len(out) >= until:
                break
    finally:
        c.close()
    return out


def test_collector_publishes_enriched_batches_keyed_by_pop(
    settings: CollectorSettings, exports: dict[str, Export]
) -> None:
    registry = CollectorRegistry()
    # the capture replayed here carries 2023 timestamps: no time bounds for this test
    replay = PlausibilitySettings(max_past_s=1e10, max_future_s=1e10)
    svc = CollectorService(
        settings.model_copy(update={"publish_raw_datagrams": True, "plausibility": replay}), registry
    )
    svc.start()
    try:
        nf, sf = svc.ports
        real = exports["softflowd-10"].datagrams
        ours = data([7, 8, 9, 7])
        send(nf, [template(), ours] + real)
        send(sf, [counter_sample(7, 123_456)])
        send(nf, [data([7])], src="127.0.0.2")  # not in the inventory: denied
        send(nf, BAD)  # bad input: counted, no crash
        msgs = read(settings.kafka, catalog.FLOWS, until=4 + 33)
        stats = read(settings.kafka, catalog.LINK_STATS, until=1)
        raw = read(settings.kafka, catalog.RAW_DATAGRAMS, until=5 + len(real))
        assert svc.health() == (True, "ok")
    finally:
        svc.stop()
    assert svc.health() == (True, "ok")  # the worker drained and ended cleanly after stop()
    assert sorted(m.value() for m in raw) == sorted([template(), ours, counter_sample(7, 123_456)] + real + BAD)
    assert {m.key() for m in raw} == {b"127.0.0.1"}
    assert {m.key() for m in msgs} == {b"fra1"}
    rows = [r for m in msgs for r in decode_flows(m.value()).to_pylist()]
    assert len(rows) == 4 + 33
    mine = sorted((r for r in rows if r["observation_domain"] == 3), key=lambda r: r["src_port"])
    assert [r["link_id"] for r in mine] == ["fra1-transit-a", "fra1-pni-b", "", "fra1-transit-a"]
    assert [r["dst_as"] for r in mine] == [64501, 64502, 64501, 64502]
    assert [r["dst_prefix_len"] for r in mine] == [24, 25, 24, 25]
    assert addr_to_str(mine[1]["dst_prefix"]) == "198.51.100.128"
    assert {(r["pop"], r["router"]) for r in rows} == {("fra1", "fra1-edge1")}
    assert mine[2]["flags"] & FlowFlags.LINK_UNKNOWN and not mine[0]["flags"] & FlowFlags.LINK_UNKNOWN
    assert [r["bytes"] for r in mine] == [1500, 3000, 4500, 6000]
    v6 = [r for r in rows if addr_to_str(r["dst_addr"]).startswith("2001:db8")]
    assert v6 and {r["dst_as"] for r in v6} == {64510}
    assert LinkStats.decode(stats[0].value()).model_dump(
        include={"pop", "router", "if_index", "out_octets", "source"}
    ) == {"pop": "fra1", "router": "fra1-edge1", "if_index": 7, "out_octets": 123_456, "source": "sflow"}
    labels = {"exporter": "127.0.0.1", "protocol": "ipfix"}
    assert sample_value(registry, "netpilot_collector_flows_total", labels) == 4 + 33
    assert sample_value(registry, "netpilot_collector_denied_datagrams_total") == 1
    assert sample_value(registry, "netpilot_collector_link_unknown_flows_total") == 1 + 33
    assert sample_value(registry, "netpilot_collector_queue_dropped_datagrams_total") == 0
    drops = {
        r: sample_value(registry, "netpilot_collector_flows_dropped_total", {"reason": r})
        for r in ("truncated", "no_template", "bad_length", "unknown_version")
    }
    assert drops == {"truncated": 1, "no_template": 0, "bad_length": 1, "unknown_version": 0}


def test_collector_refuses_implausible_flows_counts_them_by_reason_and_publishes_the_rest(
    settings: CollectorSettings,
) -> None:
    registry = CollectorRegistry()
    svc = CollectorService(settings, registry)
    svc.start()
    now = int(time.time() * 1000)
    bad, good = test_bounds.bad(now), len(test_bounds.bad(now))  # one good flow before each bad one
    try:
        send(svc.ports[0], [test_bounds.mixed(now, tid=301, domain=5)])
        msgs = read(settings.kafka, catalog.FLOWS, until=good)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not sample_value(
            registry, "netpilot_collector_flows_dropped_total", {"reason": Refused.TIME_PAST}
        ):
            time.sleep(0.1)
        assert svc.health() == (True, "ok")
    finally:
        svc.stop()
    rows = [r for m in msgs for r in decode_flows(m.value()).to_pylist()]
    assert sorted(r["src_port"] for r in rows) == sorted(1000 + i % 5 for i in range(good))
    assert max(r["bytes_scaled"] for r in rows) == 1500 * 5 * 100
    dropped = {r: sample_value(registry, "netpilot_collector_flows_dropped_total", {"reason": r}) for r in REFUSED}
    expected = {r: float(sum(1 for _, _, why in bad if why == r)) for r in REFUSED}
    assert dropped == expected
    assert sample_value(registry, "netpilot_collector_flows_total", {"exporter": "127.0.0.1", "protocol": "ipfix"}) == (
        2 * good
    )


def test_restarted_collector_decodes_at_once_with_templates_from_the_topic(settings: CollectorSettings) -> None:
    """The template learned from one exporter session (address + source port) is on the
    compacted topic; a restarted collector decodes that session's data at once, while the
    same address from another source port (another session) still waits for its template."""
    exporter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    exporter.bind(("127.0.0.1", 0))
    sport = exporter.getsockname()[1]
    try:
        first = CollectorService(settings)
        first.start()
        try:
            send(first.ports[0], [template(), data([7])], sock=exporter)
            read(settings.kafka, catalog.FLOWS, until=1)
        finally:
            first.stop()
        [tpl] = read(settings.kafka, catalog.EXPORTER_TEMPLATES, until=1)
        assert tpl.key() == f"127.0.0.1|3|300|{sport}".encode()
        persisted = ExporterTemplate.decode(tpl.value())
        assert (persisted.version, persisted.source_port) == (10, sport)
        # poison on the templates topic (keys of their own): skipped and dead-lettered at load
        poison = KafkaProducer(settings.kafka)
        topic = settings.kafka.topic(catalog.EXPORTER_TEMPLATES)
        poison.produce(topic, b"\xffnot json", key="127.0.0.9|0|256", headers=ExporterTemplate.headers())
        poison.produce(topic, b"{}", key="127.0.0.9|0|257", headers=[("schema", b"exporter-template/9")])
        poison.flush()

        registry = CollectorRegistry()
        second = CollectorService(settings, registry)
        second.start()
        try:
            assert second.decoder.template_count() == 1
            dead = [
                DeadLetter.from_headers(m.key(), m.value(), m.headers())
                for m in read(settings.kafka, catalog.DEAD_LETTERS, until=2)
            ]
            assert sorted((d.component, d.source_topic, d.reason) for d in dead) == [
                ("collector", topic, "schema-mismatch"),
                ("collector", topic, "wire-decode"),
            ]
            send(second.ports[0], [data([8, 8])], sock=exporter)  # data only: no template in this datagram
            send(second.ports[0], [data([9])])  # another source port: another session, held
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and (
                not sample_value(
                    registry, "netpilot_collector_flows_total", {"exporter": "127.0.0.1", "protocol": "ipfix"}
                )
                or len(second.decoder.pending) != 1
            ):
                time.sleep(0.1)
            assert len(second.decoder.pending) == 1  # only the other session's data waits
        finally:
            second.stop()
    finally:
        exporter.close()
    rows = [r for m in read(settings.kafka, catalog.FLOWS, until=3) for r in decode_flows(m.value()).to_pylist()]
    assert sorted(r["link_id"] for r in rows) == ["fra1-pni-b", "fra1-pni-b", "fra1-transit-a"]
    # stopping lost the held set: counted, not silent
    assert sample_value(registry, "netpilot_collector_flows_dropped_total", {"reason": "no_template"}) == 1
