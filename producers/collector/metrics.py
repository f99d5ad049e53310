"""Collector metrics (``netpilot_collector_*``), updated per batch, never per flow."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from netpilot.obs.metrics import metrics_for
from netpilot.obs.service import Errors
from producers.collector.decode.bounds import REFUSED
from producers.collector.decode.errors import ALL_REASONS


@dataclass(frozen=True)
class CollectorMetrics:
    received: Counter  # exporter
    denied: Counter  # datagrams from exporters not in the inventory
    queue_dropped: Counter
    socket_dropped: Counter  # the kernel's drops on our sockets (receive buffer full)
    queue_depth: Gauge
    datagrams: Counter  # exporter, protocol
    flows: Counter  # exporter, protocol
    drops: Counter  # reason
    sampling_unknown: Counter
    link_unknown: Counter
    prefix_unknown: Counter
    templates: Gauge
    template_events: Counter  # event
    decode_seconds: Histogram
    messages_published: Counter  # topic kind
    bytes_published: Counter
    delivery_errors: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> CollectorMetrics:
        m = metrics_for("collector", registry)
        drops = m.counter(
            "flows_dropped_total", "Items dropped while decoding (or refused as implausible), by reason", ["reason"]
        )
        for r in ALL_REASONS + REFUSED:
            drops.labels(r)
        out = cls(
            received=m.counter("received_datagrams_total", "UDP datagrams received", ["exporter"]),
            denied=m.counter("denied_datagrams_total", "Datagrams from exporters not in the inventory"),
            queue_dropped=m.counter("queue_dropped_datagrams_total", "Datagrams dropped: decode queue full"),
            socket_dropped=m.counter(
                "socket_dropped_datagrams_total", "Datagrams the kernel dropped: socket receive buffer full"
            ),
            queue_depth=m.gauge("queue_depth", "Datagrams waiting to be decoded"),
            datagrams=m.counter("datagrams_total", "Datagrams decoded", ["exporter", "protocol"]),
            flows=m.counter("flows_total", "Flows decoded", ["exporter", "protocol"]),
            drops=drops,
            sampling_unknown=m.counter("sampling_unknown_flows_total", "Flows whose exporter stated no rate"),
            link_unknown=m.counter("link_unknown_flows_total", "Flows whose (exporter, out_if) is no known link"),
            prefix_unknown=m.counter("prefix_unknown_flows_total", "Flows whose dst_addr has no route"),
            templates=m.gauge("templates", "Templates in the cache"),
            template_events=m.counter("template_events_total", "Templates learned/changed/withdrawn", ["event"]),
            decode_seconds=m.histogram("decode_seconds", "Time per decode pass (decode + enrich + encode)"),
            messages_published=m.counter("messages_published_total", "Kafka messages queued", ["kind"]),
            bytes_published=m.counter("bytes_published_total", "Bytes of Kafka message values queued", ["kind"]),
            delivery_errors=m.counter("delivery_errors_total", "Kafka messages that failed delivery"),
        )
        m.service(
            processed={"datagrams": out.datagrams, "flows": out.flows},
            errors=[
                Errors(out.drops),
                Errors(out.denied, "exporter-unknown"),
                Errors(out.queue_dropped, "queue-full"),
                Errors(out.socket_dropped, "socket-buffer-full"),
                Errors(out.delivery_errors, "kafka-delivery"),
            ],
            duration=out.decode_seconds,
            backlog=out.queue_depth,
        )
        return out
