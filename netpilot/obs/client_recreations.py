"""How often this process replaced one of its Kafka clients, and why.

netpilot's Kafka wrappers (netpilot/kafka/consumer.py, producer.py) replace a librdkafka
client that a known librdkafka fault left unable to recover on its own: a static consumer
fenced after a broker restart, a consumer out of its group for too long, a producer left
with no broker at all. Each replacement is logged, and it is counted here so that an
operator sees it too: every component's service view exports these counts
(``netpilot_service_kafka_client_recreations_total``, netpilot/obs/service.py), and the
service dashboard plots them. A count that rises now and then is the workaround doing its
job during broker restarts; one that rises steadily points at the cluster.

The counts are per process, not per client object: a component that builds a new consumer
wrapper (a sink restarting its loop) must not reset a counter Prometheus reads as monotonic.
"""

from __future__ import annotations

import threading

REASONS: tuple[tuple[str, str], ...] = (
    ("consumer", "fenced"),
    ("consumer", "out_of_group"),
    ("producer", "stranded"),
)
"""(client, reason) pairs, exported at 0 from the start (a series born at 1 shows no
increase to ``increase()`` or an alert)."""

_counts: dict[tuple[str, str], int] = dict.fromkeys(REASONS, 0)
_lock = threading.Lock()


def count(client: str, reason: str) -> None:
    """One ``client`` replaced for ``reason`` (one of REASONS)."""
    key = (client, reason)
    with _lock:
        if key not in _counts:
            raise ValueError(f"unknown client recreation {key}: add it to REASONS")
        _counts[key] += 1


def snapshot() -> dict[tuple[str, str], int]:
    """Every (client, reason) and its count so far in this process."""
    with _lock:
        return dict(_counts)
