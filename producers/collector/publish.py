"""Publishing: flows batches keyed by PoP, optional raw datagrams, sFlow link stats.

One Arrow IPC message per PoP per decode pass, split at ``max_flows_per_message`` so a
message stays well under the topic's ``max.message.bytes``. The producer applies
backpressure (never drops); Arrow already compresses (lz4), so Kafka compression is off.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from netpilot import catalog
from netpilot.kafka.producer import KafkaProducer
from netpilot.settings import KafkaSettings
from netpilot.wire import flows
from netpilot.wire.flows import addr_to_str
from netpilot.wire.links import LinkStats

UNKNOWN_POP_KEY = "_unknown"


class Publisher:
    def __init__(self, kafka: KafkaSettings, producer: KafkaProducer, max_flows: int) -> None:
        self.producer = producer
        self.max_flows = max_flows
        self.flows_topic = kafka.topic(catalog.FLOWS)
        self.raw_topic = kafka.topic(catalog.RAW_DATAGRAMS)
        self.stats_topic = kafka.topic(catalog.LINK_STATS)

    def flows(self, table: pa.Table, pop_index: np.ndarray, pops: list[str]) -> tuple[int, int]:
        """Publish a batch split by PoP; returns (messages, bytes)."""
        messages = size = 0
        if not len(table):
            return 0, 0
        present = np.unique(pop_index)
        for p in present:
            part = table if len(present) == 1 else table.filter(pa.array(pop_index == p))
            key = pops[p] if p >= 0 else UNKNOWN_POP_KEY
            for start in range(0, len(part), self.max_flows):
                value = flows.encode_flows(part.slice(start, self.max_flows))
                self.producer.produce(self.flows_topic, value, key=key, headers=flows.headers())
                messages += 1
                size += len(value)
        return messages, size

    def raw(self, datagrams: list[tuple[bytes, bytes, int, int]]) -> int:
        """Copy datagrams to the raw topic (key = exporter), for replay with `netpilot decode`."""
        for exporter, data, received_ms, port in datagrams:
            self.producer.produce(
                self.raw_topic,
                data,
                key=addr_to_str(exporter),
                headers=[
                    ("schema", b"raw-datagram/1"),
                    ("received-ms", str(received_ms).encode()),
                    ("source-port", str(port).encode()),
                ],
            )
        return len(datagrams)

    def link_stats(self, stats: list[LinkStats]) -> int:
        for s in stats:
            self.producer.produce(self.stats_topic, s.encode(), key=s.pop, headers=LinkStats.headers())
        return len(stats)
