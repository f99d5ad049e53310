"""Kafka message values -> Arrow tables shaped like the ClickHouse tables.

flows/1 and flow-aggregates/1 already are Arrow: decode (zero-copy) and concatenate. The
JSON topics are low-volume (one message per link and poll, per recommendation): each
message is validated by its wire model, then a whole batch becomes Arrow columns at once.
Tombstones of compacted topics whose table keeps "deleted" rows (link-inventory,
applied-override) become such rows, keyed from the message key.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from netpilot import catalog
from netpilot.errors import WireError
from netpilot.wire import aggregates, flows
from netpilot.wire.autopilot import CycleSummary, Recommendation
from netpilot.wire.injector import AppliedOverride
from netpilot.wire.intake import Headers, Intake
from netpilot.wire.json import WireMessage
from netpilot.wire.links import LinkInventory, LinkStats, LinkUtilisation

TS = pa.timestamp("ms", tz="UTC")
LC = pa.string()  # LowCardinality(String) accepts plain strings


@dataclass(frozen=True)
class Item:
    """One decoded message: its offset, key and payload (Arrow table or wire model)."""

    offset: int
    key: bytes | None
    payload: Any
    rows: int
    ts: float | None = None
    """The Kafka record's timestamp (unix seconds; None: not available). Stable for an
    offset, so a replayed batch builds the same rows."""


def _ts(values: Sequence[float | None]) -> pa.Array:
    arr = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    mask = np.isnan(arr)
    ms = np.where(mask, 0, np.round(arr * 1000)).astype(np.int64)
    return pa.array(ms, type=pa.int64(), mask=mask if mask.any() else None).cast(TS)


def _col(values: list, t: pa.DataType) -> pa.Array:
    return pa.array(values, type=t)


# -- per topic: decode one value, and turn a batch of decoded values into a table ------


def _decode_flows(value: bytes | None, key: bytes | None) -> tuple[pa.Table, int]:
    if value is None:
        raise WireError("flows: empty value")
    t = flows.decode_flows(value)
    return t, t.num_rows


def _decode_aggregates(value: bytes | None, key: bytes | None) -> tuple[pa.Table, int]:
    if value is None:
        raise WireError("flow-aggregates: empty value")
    t = aggregates.decode_aggregates(value)
    return t, t.num_rows


def _arrow_concat(items: Sequence[Item]) -> pa.Table:
    # One dictionary per column: each batch brings its own, and an IPC stream to ClickHouse
    # with dictionary replacement between batches is not accepted everywhere.
    return pa.concat_tables([i.payload for i in items]).unify_dictionaries().combine_chunks()


def _model(cls: type[WireMessage]) -> Callable[[bytes | None, bytes | None], tuple[Any, int]]:
    def decode(value: bytes | None, key: bytes | None) -> tuple[Any, int]:
        return cls.decode(value), 1

    return decode


def _decode_inventory(value: bytes | None, key: bytes | None) -> tuple[Any, int]:
    if value is None:  # tombstone: the link was deleted; keep that as a row
        pop, sep, link_id = (key or b"").decode(errors="replace").partition("|")
        if not sep or not pop or not link_id:
            raise WireError(f"link-inventory tombstone with a key that is not pop|link_id: {key!r}")
        return ("deleted", pop, link_id), 1
    return LinkInventory.decode(value), 1


def _decode_recommendation(value: bytes | None, key: bytes | None) -> tuple[Any, int]:
    if value is None:  # compaction tombstone: nothing to record
        return None, 0
    return Recommendation.decode(value), 1


def _decode_applied(value: bytes | None, key: bytes | None) -> tuple[Any, int]:
    if value is None:  # tombstone: no router holds the override any more; keep that as a row
        pop, sep, prefix = (key or b"").decode(errors="replace").partition("|")
        if not sep or not pop or not prefix:
            raise WireError(f"applied-override tombstone with a key that is not pop|prefix: {key!r}")
        return ("deleted", pop, prefix), 1
    return AppliedOverride.decode(value), 1


def _link_stats(items: Sequence[Item]) -> pa.Table:
    m: list[LinkStats] = [i.payload for i in items]
    f64 = pa.float64()
    return pa.table(
        {
            "ts": _ts([x.ts for x in m]),
            "pop": _col([x.pop for x in m], LC),
            "router": _col([x.router for x in m], LC),
            "link_id": _col([x.link_id or "" for x in m], LC),
            "if_index": _col([x.if_index for x in m], pa.uint32()),
            "if_name": _col([x.if_name or "" for x in m], LC),
            "source": _col([x.source for x in m], LC),
            "interval_s": _col([x.interval_s for x in m], f64),
            "out_octets": _col([x.out_octets for x in m], pa.uint64()),
            "in_octets": _col([x.in_octets for x in m], pa.uint64()),
            "out_bps": _col([x.out_bps for x in m], f64),
            "in_bps": _col([x.in_bps for x in m], f64),
            "speed_bps": _col([x.speed_bps for x in m], f64),
            "oper_up": _col([x.oper_up for x in m], pa.bool_()),
            "out_discards": _col([x.out_discards for x in m], pa.uint64()),
            "out_errors": _col([x.out_errors for x in m], pa.uint64()),
            "counter_reset": _col([x.counter_reset for x in m], pa.bool_()),
        }
    )


def _link_utilisation(items: Sequence[Item]) -> pa.Table:
    m: list[LinkUtilisation] = [i.payload for i in items]
    f64 = pa.float64()
    return pa.table(
        {
            "window_start": _ts([x.window_start for x in m]),
            "window_s": _col([x.window_s for x in m], pa.float32()),
            "pop": _col([x.pop for x in m], LC),
            "link_id": _col([x.link_id for x in m], LC),
            "capacity_bps": _col([x.capacity_bps for x in m], f64),
            "counter_bps": _col([x.counter_bps for x in m], f64),
            "flow_bps": _col([x.flow_bps for x in m], f64),
            "utilisation": _col([x.utilisation for x in m], f64),
            "coverage": _col([x.coverage for x in m], f64),
        }
    )


def _link_inventory(items: Sequence[Item]) -> pa.Table:
    cols: dict[str, list] = {
        k: []
        for k in (
            "pop",
            "link_id",
            "router",
            "exporter",
            "if_name",
            "if_index",
            "capacity_bps",
            "peer_asn",
            "peer_type",
            "drained",
            "description",
            "deleted",
            "version",
        )
    }
    for i in items:
        x = i.payload
        if isinstance(x, tuple):  # ("deleted", pop, link_id)
            row = (x[1], x[2], "", "", "", None, 0.0, None, "", False, "", True, i.offset)
        else:
            row = (
                x.pop,
                x.link_id,
                x.router,
                x.exporter or "",
                x.if_name or "",
                x.if_index,
                x.capacity_bps,
                x.peer_asn,
                x.peer_type,
                x.drained,
                x.description,
                False,
                i.offset,
            )
        for k, v in zip(cols, row):
            cols[k].append(v)
    types = {
        "if_index": pa.uint32(),
        "capacity_bps": pa.float64(),
        "peer_asn": pa.uint32(),
        "drained": pa.bool_(),
        "deleted": pa.bool_(),
        "version": pa.uint64(),
    }
    return pa.table({k: _col(v, types.get(k, pa.string())) for k, v in cols.items()})


def _recommendations(items: Sequence[Item]) -> pa.Table:
    m: list[Recommendation] = [i.payload for i in items if i.payload is not None]
    f64 = pa.float64()
    detail = [
        json.dumps(
            {
                "thresholds": x.thresholds,
                "bgp_hint": x.bgp_hint,
                "from": x.from_.model_dump(mode="json"),
                "to": x.to.model_dump(mode="json"),
            },
            separators=(",", ":"),
            default=str,
        )
        for x in m
    ]
    return pa.table(
        {
            "generated_at": _ts([x.generated_at for x in m]),
            "valid_until": _ts([x.valid_until for x in m]),
            "hold_until": _ts([x.hold_until for x in m]),
            "id": _col([x.id for x in m], pa.string()),
            "cycle_id": _col([x.cycle_id for x in m], pa.string()),
            "pop": _col([x.pop for x in m], LC),
            "action": _col([x.action for x in m], LC),
            "mode": _col([x.mode for x in m], LC),
            "prefix": _col([x.prefix for x in m], pa.string()),
            "afi": _col([x.afi for x in m], pa.uint8()),
            "split_from": _col([x.split_from for x in m], pa.string()),
            "rate_bps": _col([x.rate_bps for x in m], f64),
            "samples": _col([x.samples for x in m], pa.uint64()),
            "from_link_id": _col([x.from_.link_id for x in m], LC),
            "from_peer_type": _col([x.from_.peer_type or "" for x in m], LC),
            "from_util_after": _col([x.from_.util_projected_after for x in m], f64),
            "to_link_id": _col([x.to.link_id for x in m], LC),
            "to_peer_type": _col([x.to.peer_type or "" for x in m], LC),
            "to_util_after": _col([x.to.util_projected_after for x in m], f64),
            "reason": _col([x.reason for x in m], LC),
            "rank": _col([x.rank for x in m], pa.uint32()),
            "detail": _col(detail, pa.string()),
        }
    )


def _cycle_summaries(items: Sequence[Item]) -> pa.Table:
    m: list[CycleSummary] = [i.payload for i in items]
    return pa.table(
        {
            "generated_at": _ts([x.generated_at for x in m]),
            "cycle_id": _col([x.cycle_id for x in m], pa.string()),
            "pop": _col([x.pop for x in m], LC),
            "mode": _col([x.mode for x in m], LC),
            "overloaded_links": _col([list(x.overloaded_links) for x in m], pa.list_(pa.string())),
            "unresolved_bps": _col([list(x.unresolved_bps.items()) for x in m], pa.map_(pa.string(), pa.float64())),
            "adds": _col([x.adds for x in m], pa.uint32()),
            "refreshes": _col([x.refreshes for x in m], pa.uint32()),
            "withdraws": _col([x.withdraws for x in m], pa.uint32()),
            "active_overrides": _col([x.active_overrides for x in m], pa.uint32()),
            "detoured_bps": _col([x.detoured_bps for x in m], pa.float64()),
            "stale_inputs": _col([list(x.stale_inputs) for x in m], pa.list_(pa.string())),
            "fail_static": _col([x.fail_static for x in m], pa.bool_()),
            "kill_switch": _col([x.kill_switch for x in m], pa.bool_()),
            "moves_lower_bound": _col([x.moves_lower_bound for x in m], pa.uint32()),
            "moves_ratio": _col([x.moves_ratio for x in m], pa.float64()),
        }
    )


def _applied_overrides(items: Sequence[Item]) -> pa.Table:
    cols: dict[str, list] = {
        k: []
        for k in (
            "pop",
            "prefix",
            "link_id",
            "next_hop",
            "routers",
            "local_pref",
            "communities",
            "recommendation_id",
            "since",
            "confirmed_at",
            "published_at",
            "deleted",
            "version",
        )
    }
    for i in items:
        x = i.payload
        row: tuple[Any, ...]
        if isinstance(x, tuple):  # ("deleted", pop, prefix)
            row = (x[1], x[2], "", "", [], None, [], None, None, None, i.ts, True, i.offset)
        else:
            row = (
                x.pop,
                x.prefix,
                x.link_id or "",
                x.next_hop,
                list(x.routers),
                x.local_pref,
                list(x.communities),
                x.recommendation_id,
                x.since,
                x.confirmed_at,
                i.ts,
                False,
                i.offset,
            )
        for k, v in zip(cols, row):
            cols[k].append(v)
    types = {
        "routers": pa.list_(pa.string()),
        "local_pref": pa.uint32(),
        "communities": pa.list_(pa.string()),
        "deleted": pa.bool_(),
        "version": pa.uint64(),
    }
    out = {
        k: _ts(v) if k in ("since", "confirmed_at", "published_at") else _col(v, types.get(k, pa.string()))
        for k, v in cols.items()
    }
    return pa.table(out)


Decoder = Callable[[bytes | None, bytes | None], tuple[Any, int]]
Builder = Callable[[Sequence[Item]], pa.Table]

CONVERTERS: dict[str, tuple[Decoder, Builder]] = {
    "flows": (_decode_flows, _arrow_concat),
    "flow_aggregates": (_decode_aggregates, _arrow_concat),
    "link_stats": (_model(LinkStats), _link_stats),
    "link_utilisation": (_model(LinkUtilisation), _link_utilisation),
    "link_inventory": (_decode_inventory, _link_inventory),
    "recommendations": (_decode_recommendation, _recommendations),
    "cycle_summaries": (_model(CycleSummary), _cycle_summaries),
    "applied_overrides": (_decode_applied, _applied_overrides),
}


def decode(
    topic_id: str,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    ts: float | None = None,
    *,
    headers: Headers = None,
    intake: Intake | None = None,
) -> Item:
    """Decode one message (``ts``: its Kafka timestamp, unix seconds) and, with ``intake``
    (as the sink always does), check its ``schema`` header and timestamps; raises
    :class:`WireError` for anything undecodable or implausible. Without ``intake`` (tools and
    tests building tables from data they made) only the body's own schema is checked."""
    dec, _ = CONVERTERS[topic_id]
    schema_id = catalog.BY_ID[topic_id].value_schema
    if intake is not None:
        intake.check_header(schema_id, headers)
    payload, rows = dec(value, key)
    if intake is not None and isinstance(payload, (WireMessage, pa.Table)):  # not a tombstone's row
        intake.check_times(payload, schema_id)
    return Item(offset, key, payload, rows, ts)


def to_arrow(topic_id: str, items: Sequence[Item]) -> pa.Table:
    """One Arrow table for a batch of decoded messages of one topic."""
    return CONVERTERS[topic_id][1](items)
