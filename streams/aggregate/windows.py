"""Event-time tumbling windows over flows/1 batches: pure, vectorised batch math.

One call per Kafka message (a batch of thousands of flows); everything per flow happens
inside polars. No Kafka, faust, clock or logging here: callers pass the watermarks in and
get frames and counts back, so the same functions serve the faust agent, the tests and
``bench/bench_aggregate.py``.

Vocabulary:

* **event time** of a flow: one of its timestamps (``time_end`` by default: a flow's
  bytes are known once it has ended).
* **max event** per PoP: the largest event time accepted so far. The **watermark** is
  ``max_event - allowed_lateness``; a window ``[start, start + size)`` *closes* when the
  watermark reaches its end. Each PoP has its own watermark because PoPs export with
  their own delays and clocks; one slow PoP must not make another's flows "too late".
* **too late**: a flow whose window had already closed when its batch arrived. It is not
  merged (its window was already published) but counted per (PoP, window size).
* **future**: a flow stamped more than ``max_future_s`` ahead of the time the collector
  received it, or of the caller's clock (a broken exporter clock). It would push the
  watermark forward and make every honest flow too late, so it is dropped and counted.
* the max event only takes a flow's event time up to its **receive time**
  (``min(event, time_received)``): a flow stamped ahead within ``max_future_s`` is still
  aggregated, but it cannot move the watermark past what the collector has actually
  received, so one outlier never makes the real flows of its window late.
* **spreading**: a flow record covers ``[time_start, time_end]``, which can span several
  windows (softflowd's records last up to ``maxlife`` plus its expiry interval, routers'
  up to their active timeout). Its bytes, packets and samples are shared among the
  windows it overlaps, in proportion to the overlap (integer shares that add up to the
  record's exact totals); its ``flows`` count goes to the window of its end. Assigning a
  whole 6 s record to its end window made the lab's 10 s windows read 0.6 and 1.2 of a
  link that sent a steady 1.0. Whether a record is too late is still judged by the window
  of its event time; a share that falls in a window already closed for its PoP is folded
  into the oldest window still open (it is not dropped: its bytes did happen, and the
  open window is the earliest one that can still report them). Only with
  ``event_time="time_end"``; ``spread=False`` restores the point assignment.
* a **partial** is a frame of per-window sums with exactly the flow-aggregates/1 columns
  (``window_start`` kept as int64 ms until :func:`to_aggregates_table`); partials for
  the same window are merged by summing, in any order, any number of times.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from netpilot.wire import aggregates as wire_aggregates
from streams.arith import sum_u64

EventTimeField = str  # one of flows/1's timestamp columns
EVENT_TIME_FIELDS = ("time_end", "time_start", "time_received")

GROUP_KEYS = wire_aggregates.ROW_KEY
"""One partial (and one published) row per key: the key sinks deduplicate republished windows on."""
SUM_COLUMNS = wire_aggregates.SUM_COLUMNS
NO_WATERMARK = -(2**62)
"""Watermark of a PoP never seen: nothing is late yet."""

PARTIAL_SCHEMA = pl.Schema(
    {
        "window_start": pl.Int64,
        "window_s": pl.UInt32,
        "pop": pl.String,
        "link_id": pl.String,
        "dst_prefix": pl.Binary,
        "dst_prefix_len": pl.UInt8,
        "dst_as": pl.UInt32,
        "bytes": pl.UInt64,
        "packets": pl.UInt64,
        "flows": pl.UInt64,
        "samples": pl.UInt64,
    }
)
DROP_SCHEMA = pl.Schema({"pop": pl.String, "window_s": pl.UInt32, "flows": pl.UInt64, "bytes": pl.UInt64})
PARTIAL_COLUMNS = tuple(PARTIAL_SCHEMA.keys())
DROP_COLUMNS = tuple(DROP_SCHEMA.keys())


@dataclass(frozen=True)
class WindowSpec:
    """How flows are windowed. ``sizes_s`` are tumbling window lengths in seconds."""

    sizes_s: tuple[int, ...] = (10, 60)
    allowed_lateness_s: float = 10.0
    max_future_s: float = 60.0
    event_time: EventTimeField = "time_end"
    spread: bool = True
    """Share a record's bytes among the windows ``[time_start, time_end]`` overlaps (see
    the module doc); only with ``event_time="time_end"``."""

    def __post_init__(self) -> None:
        if not self.sizes_s or any(s <= 0 for s in self.sizes_s):
            raise ValueError(f"window sizes must be positive seconds, got {self.sizes_s!r}")
        if len(set(self.sizes_s)) != len(self.sizes_s):
            raise ValueError(f"window sizes must be distinct, got {self.sizes_s!r}")
        if self.allowed_lateness_s < 0:
            raise ValueError("allowed_lateness_s must be >= 0")
        if self.event_time not in EVENT_TIME_FIELDS:
            raise ValueError(f"event_time must be one of {EVENT_TIME_FIELDS}, got {self.event_time!r}")

    @property
    def lateness_ms(self) -> int:
        return int(self.allowed_lateness_s * 1000)


@dataclass(frozen=True)
class BatchResult:
    """What one flows batch contributed."""

    partials: pl.DataFrame
    """Per-window sums of the accepted flows (PARTIAL_SCHEMA), one row per group."""
    max_event_ms: dict[str, int]
    """Per PoP, the largest accepted event time in this batch."""
    too_late: pl.DataFrame
    """DROP_SCHEMA: flows (and bytes) per (PoP, window size) whose window had closed."""
    future: pl.DataFrame
    """DROP_SCHEMA with window_s=0: flows dropped for a timestamp too far ahead."""
    flows_in: dict[str, int]
    """Per PoP, every flow of the batch (accepted or dropped)."""


def watermark(max_event_ms: int | None, spec: WindowSpec) -> int:
    """The watermark that follows from a PoP's max event time."""
    return NO_WATERMARK if max_event_ms is None else max_event_ms - spec.lateness_ms


def _watermark_frame(watermarks: Mapping[str, int]) -> pl.DataFrame:
    return pl.DataFrame(
        {"pop": list(watermarks), "wm": list(watermarks.values())}, schema={"pop": pl.String, "wm": pl.Int64}
    )


def _drops(frame: pl.DataFrame) -> pl.DataFrame:
    return (
        frame.group_by("pop", "window_s")
        .agg(flows=pl.len().cast(pl.UInt64), bytes=sum_u64("bytes_scaled"))
        .select(DROP_COLUMNS)
        .cast(dict(DROP_SCHEMA))  # type: ignore[arg-type]
    )


def aggregate_batch(
    flows: pa.Table, spec: WindowSpec, watermarks: Mapping[str, int], now_ms: int | None = None
) -> BatchResult:
    """Aggregate one flows/1 batch into per-window partials.

    ``watermarks`` are the PoPs' watermarks *before* this batch (see :func:`watermark`):
    a flow is too late for a window size when that window's end is at or below its PoP's
    watermark. Flows stamped more than ``max_future_s`` after their receive time are
    dropped as future; ``now_ms`` (the caller's clock) also drops those ahead of it.
    """
    received = [] if spec.event_time == "time_received" else ["time_received"]
    spread = spec.spread and spec.event_time == "time_end"
    frame = pl.from_arrow(
        flows.select(
            [
                "pop",
                "link_id",
                spec.event_time,
                *received,
                *(["time_start"] if spread else []),
                "dst_prefix",
                "dst_prefix_len",
                "dst_as",
                "bytes_scaled",
                "packets_scaled",
                "packets",
            ]
        )
    )
    assert isinstance(frame, pl.DataFrame)
    frame = frame.with_columns(
        # Categorical keeps the group-by on integers; strings are made after aggregation.
        pl.col("pop").cast(pl.String),
        pl.col(spec.event_time).dt.epoch("ms").alias("t"),
        pl.col("time_received").dt.epoch("ms").alias("rx"),
        *([pl.col("time_start").dt.epoch("ms").alias("t0")] if spread else []),
    ).drop(spec.event_time, *received, *(["time_start"] if spread else []))
    flows_in = dict(frame.group_by("pop").len().iter_rows())
    ahead = int(spec.max_future_s * 1000)
    is_future = pl.col("t") > pl.col("rx") + ahead
    if now_ms is not None:
        is_future = is_future | (pl.col("t") > now_ms + ahead)
    future = _drops(frame.filter(is_future).with_columns(window_s=pl.lit(0, pl.UInt32)))
    frame = frame.filter(~is_future)
    frame = frame.join(_watermark_frame(watermarks), on="pop", how="left").with_columns(
        pl.col("wm").fill_null(NO_WATERMARK)
    )
    # the watermark follows what was received, not what a (skewed) clock claims
    max_event = dict(frame.group_by("pop").agg(pl.min_horizontal("t", "rx").max()).iter_rows())

    if spread:
        # a PoP with no watermark yet (its first batch): fold as if the record's own end set
        # it. Per record, so batches merge to the same sums however they were cut, and a
        # record spanning hours adds a bounded number of rows
        frame = frame.with_columns(
            wm_spread=pl.when(pl.col("wm") == NO_WATERMARK).then(pl.col("t") - spec.lateness_ms).otherwise("wm")
        )
    per_size = []
    late_parts = []
    for size in spec.sizes_s:
        size_ms = size * 1000
        sized = frame.with_columns(window_start=(pl.col("t") // size_ms) * size_ms, window_s=pl.lit(size, pl.UInt32))
        late = pl.col("window_start") + size_ms <= pl.col("wm")
        late_parts.append(sized.filter(late))
        on_time = sized.filter(~late)
        per_size.append(
            _spread(on_time.with_columns(wm=pl.col("wm_spread")), size_ms)
            if spread
            else on_time.with_columns(flows=pl.lit(1, pl.UInt64))
        )
    accepted = pl.concat(per_size, how="diagonal_relaxed") if per_size else frame
    accepted = accepted.select(*GROUP_KEYS, *_SHARED, "flows")
    partials = (
        accepted.group_by(GROUP_KEYS)
        .agg(
            bytes=sum_u64("bytes_scaled"),
            packets=sum_u64("packets_scaled"),
            flows=sum_u64("flows"),
            # sampled packets actually seen: how much evidence the scaled numbers rest on
            samples=sum_u64("packets"),
        )
        .with_columns(pl.col("link_id").cast(pl.String))
        .select(PARTIAL_COLUMNS)
        .cast(dict(PARTIAL_SCHEMA))  # type: ignore[arg-type]
    )
    return BatchResult(
        partials=partials,
        max_event_ms={k: int(v) for k, v in max_event.items()},
        too_late=_drops(pl.concat(late_parts)),
        future=future,
        flows_in=flows_in,
    )


_SHARED = ("bytes_scaled", "packets_scaled", "packets")
"""The additive columns a spread record shares among its windows."""


def _spread(sized: pl.DataFrame, size_ms: int) -> pl.DataFrame:
    """One row per (record, window it overlaps), with its integer share of each additive
    column; ``sized`` holds on-time records with their end window in ``window_start`` and
    the PoP's watermark in ``wm`` (see :func:`aggregate_batch`).

    A record's windows run from the one holding ``t0`` (folded into the oldest window still
    open at ``wm``) to its end window. The share of window k is
    ``floor(v * f_end(k)) - floor(v * f_start(k))``, f being the fraction of the record's
    span elapsed at the window's edges (0 at the first window's start, 1 at the last one's
    end): the shares telescope to exactly ``v``. The fold bounds the rows: a record adds
    at most one row per open window.
    """
    end_k = pl.col("window_start") // size_ms
    t0 = pl.min_horizontal("t0", "t")
    rows = (
        sized.with_columns(k0=pl.max_horizontal(t0 // size_ms, pl.col("wm") // size_ms).clip(upper_bound=end_k))
        .with_columns(t0=t0, k=pl.int_ranges("k0", end_k + 1))
        .explode("k")
    )
    dur = (pl.col("t") - pl.col("t0")).cast(pl.Float64)
    k_start, k_end = pl.col("k") * size_ms, (pl.col("k") + 1) * size_ms
    is_first, is_last = pl.col("k") == pl.col("k0"), pl.col("k") == end_k
    f_start = pl.when(is_first | (dur <= 0)).then(0.0).otherwise((k_start - pl.col("t0")) / dur)
    f_end = pl.when(is_last | (dur <= 0)).then(1.0).otherwise((k_end - pl.col("t0")) / dur)

    def share(col: str) -> pl.Expr:
        v = pl.col(col).cast(pl.Float64)
        return ((v * f_end).floor() - (v * f_start).floor()).cast(pl.UInt64).alias(col)

    return (
        rows.with_columns(share(c) for c in _SHARED)
        .with_columns(window_start=pl.col("k") * size_ms, flows=pl.when(is_last).then(1).otherwise(0).cast(pl.UInt64))
        .drop("k", "k0", "t0")
    )


def merge_partials(parts: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """Sum partials of the same windows and groups into one frame (order does not matter)."""
    nonempty = [p for p in parts if p.height]
    if not nonempty:
        return pl.DataFrame(schema=PARTIAL_SCHEMA)
    if len(nonempty) == 1:
        return nonempty[0]
    return pl.concat(nonempty).group_by(GROUP_KEYS).agg(*(sum_u64(c) for c in SUM_COLUMNS)).select(PARTIAL_COLUMNS)


def window_end_ms(window_start_ms: int, window_s: int) -> int:
    return window_start_ms + window_s * 1000


def is_closed(window_start_ms: int, window_s: int, wm: int) -> bool:
    """Whether the window ``[start, start + size)`` is closed at watermark ``wm``."""
    return window_end_ms(window_start_ms, window_s) <= wm


def boundary_crossed(old_wm: int, new_wm: int, spec: WindowSpec) -> bool:
    """Whether any window of any size ends in ``(old_wm, new_wm]``, i.e. something closes.

    Lets callers skip looking for closable windows on most batches.
    """
    if new_wm <= old_wm:
        return False
    if old_wm == NO_WATERMARK:
        return True
    return any(new_wm // (s * 1000) > old_wm // (s * 1000) for s in spec.sizes_s)


def split_closed(partials: pl.DataFrame, watermarks: Mapping[str, int]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(closed, still open) rows of a partial frame, per PoP watermark."""
    wm = partials.join(_watermark_frame(watermarks), on="pop", how="left").with_columns(
        pl.col("wm").fill_null(NO_WATERMARK)
    )
    closed = pl.col("window_start") + pl.col("window_s").cast(pl.Int64) * 1000 <= pl.col("wm")
    return wm.filter(closed).drop("wm"), wm.filter(~closed).drop("wm")


def to_aggregates_table(partials: pl.DataFrame) -> pa.Table:
    """A (closed) partial frame as a flow-aggregates/1 Arrow table."""
    schema = wire_aggregates.AGGREGATE_SCHEMA
    table = partials.select(PARTIAL_COLUMNS).to_arrow()
    arrays = []
    for f in schema:
        col = table.column(f.name)
        if f.name == "window_start":
            col = col.cast(pa.int64()).cast(f.type)
        elif f.name in ("pop", "link_id"):
            col = col.cast(pa.string()).dictionary_encode()
        elif f.name == "dst_prefix":
            col = col.cast(pa.binary()).cast(f.type)
        arrays.append(col.cast(f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def from_aggregates_table(table: pa.Table) -> pl.DataFrame:
    """A flow-aggregates/1 table (e.g. a stored partial) back as a partial frame."""
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return (
        frame.with_columns(
            pl.col("window_start").dt.epoch("ms"),
            pl.col("pop").cast(pl.String),
            pl.col("link_id").cast(pl.String),
        )
        .select(PARTIAL_COLUMNS)
        .cast(dict(PARTIAL_SCHEMA))  # type: ignore[arg-type]
    )


def encode_partial(partials: pl.DataFrame) -> bytes:
    """Serialise a partial with the flow-aggregates/1 codec (for the changelog table)."""
    return wire_aggregates.encode_aggregates(to_aggregates_table(partials))


def decode_partial(value: bytes) -> pl.DataFrame:
    return from_aggregates_table(wire_aggregates.decode_aggregates(value))


def split_by_pop(partials: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """One frame per PoP (aggregates are published keyed by PoP)."""
    return {str(k[0]): v for k, v in partials.partition_by("pop", as_dict=True).items()}
