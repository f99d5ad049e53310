"""Publish routes to the compacted routes topic; a route gone from the source is a tombstone.

A load is authoritative for the PoPs it covers (``scope``), never for the whole topic:
loading fra1's RIB dump must not withdraw ams1's routes.
"""

from __future__ import annotations

from collections.abc import Iterable

from netpilot import catalog
from netpilot.errors import ConfigError
from netpilot.kafka.compacted import Record, SyncReport, pop_of, read_compacted, sync_compacted
from netpilot.kafka.producer import KafkaProducer
from netpilot.settings import KafkaSettings
from netpilot.wire.routes import Route


def desired_records(routes: Iterable[Route]) -> dict[str, Record]:
    """Key -> record; a (pop, link, prefix) given twice is an error (which one would win?)."""
    out: dict[str, Record] = {}
    for r in routes:
        key = r.key()
        rec = Record(r.encode(), r.pop)
        if key in out and out[key].value != rec.value:
            raise ConfigError(f"route {key} is given twice with different attributes")
        out[key] = rec
    return out


def publish_routes(
    routes: Iterable[Route], kafka: KafkaSettings, producer: KafkaProducer, scope: set[str] | None = None
) -> SyncReport:
    """Upsert changed routes and tombstone withdrawn ones within ``scope`` (PoPs; default:
    the PoPs present in ``routes``)."""
    desired = desired_records(routes)
    pops = scope if scope is not None else {pop_of(k) for k in desired}
    outside = sorted({pop_of(k) for k in desired} - pops)
    if outside:
        raise ConfigError(f"routes for PoPs {outside} are outside the requested scope {sorted(pops)}")
    topic = kafka.topic(catalog.ROUTES)
    current = {k: v for k, v in read_compacted(kafka, topic).items() if pop_of(k) in pops}
    return sync_compacted(producer, topic, desired, current, Route.headers())
