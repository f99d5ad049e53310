"""What the autopilot worker knows about one PoP, and the planner snapshot built from it.

Pure (no faust, no Kafka, no clock): the worker feeds decoded wire messages in and asks for
a :class:`~streams.autopilot.model.Snapshot` at cycle time. Everything here can be rebuilt
from the worker's changelog-backed tables after a restart (see streams/autopilot/worker.py).

Inputs and where they come from:
* links — link-inventory/1 (compacted; a ``None`` value deletes the link);
* counters — link-stats/1: the latest out rate, oper status and speed per link;
* routes — route/1 (compacted; ``None`` = withdrawn);
* demand — flow-aggregates/1 windows: per (dst prefix, link) sampling-corrected bytes,
  averaged over the demand window W (Edge Fabric: 2 minutes).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import cast

import polars as pl
import pyarrow as pa

from netpilot.wire.links import LinkInventory, LinkStats
from netpilot.wire.routes import Route
from streams.arith import sum_u64
from streams.autopilot.model import LinkState, Snapshot, SnapshotBuilder, Thresholds

DEMAND_COLUMNS = ("window_start_ms", "window_s", "link_id", "prefix", "bytes", "samples")


@dataclass
class PopInputs:
    pop: str
    links: dict[str, LinkInventory] = field(default_factory=dict)
    counters: dict[str, LinkStats] = field(default_factory=dict)
    routes: dict[tuple[str, str], Route] = field(default_factory=dict)
    demand: pl.DataFrame = field(default_factory=lambda: _empty_demand())
    newest: dict[str, float] = field(default_factory=dict)
    """Newest event time seen per input (``flows``, ``counters``, ``rib``), unix seconds."""

    # -- updates -----------------------------------------------------------------------
    def set_link(self, link_id: str, link: LinkInventory | None) -> None:
        if link is None:
            self.links.pop(link_id, None)
        else:
            self.links[link_id] = link

    def set_route(self, link_id: str, prefix: str, route: Route | None, ts: float | None = None) -> None:
        if route is None:
            self.routes.pop((link_id, prefix), None)
        else:
            self.routes[(link_id, prefix)] = route
        if ts is not None:
            self._seen("rib", ts)

    def add_stats(self, stats: LinkStats) -> None:
        link_id = stats.link_id
        if link_id is None:
            return
        prev = self.counters.get(link_id)
        if prev is None or stats.ts >= prev.ts:
            # keep the last known rate across a reading without one (first poll, reset)
            if stats.out_bps is None and prev is not None and prev.out_bps is not None:
                stats = stats.model_copy(update={"out_bps": prev.out_bps})
            self.counters[link_id] = stats
        self._seen("counters", stats.ts)

    def add_aggregates(self, table: pa.Table, window_s: int, keep_s: float) -> int:
        """Add the rows of a flow-aggregates/1 batch for this PoP and window size; returns rows used."""
        df = pl.from_arrow(table)
        assert isinstance(df, pl.DataFrame)
        df = df.filter((pl.col("pop").cast(pl.String) == self.pop) & (pl.col("window_s") == window_s))
        if df.height == 0:
            return 0
        df = df.with_columns(
            pl.col("window_start").dt.epoch("ms").alias("window_start_ms"),
            pl.col("link_id").cast(pl.String),
            _prefix_text(df),
        ).select(DEMAND_COLUMNS)
        df = df.with_columns(
            pl.col("bytes").cast(pl.UInt64), pl.col("samples").cast(pl.UInt64), pl.col("window_s").cast(pl.UInt32)
        )
        # A window can arrive twice (closed windows are delivered at least once, and a
        # replayed stream re-publishes them): the newest copy replaces the older one.
        key = ["window_start_ms", "window_s", "link_id", "prefix"]
        df = df.group_by(key, maintain_order=True).agg(sum_u64("bytes"), sum_u64("samples"))
        self.demand = pl.concat([self.demand, df.select(DEMAND_COLUMNS)], how="vertical_relaxed").unique(
            subset=key, keep="last", maintain_order=True
        )
        newest_ms = cast(int, df["window_start_ms"].max())  # polars types max() as any scalar
        newest_end = (newest_ms + window_s * 1000) / 1000
        self._seen("flows", newest_end)
        self.trim(keep_s)
        return df.height

    def trim(self, keep_s: float) -> None:
        newest = self.newest.get("flows")
        if newest is None or self.demand.height == 0:
            return
        cutoff = (newest - keep_s) * 1000
        self.demand = self.demand.filter(pl.col("window_start_ms") + pl.col("window_s") * 1000 > cutoff)

    def _seen(self, what: str, ts: float) -> None:
        if ts > self.newest.get(what, float("-inf")):
            self.newest[what] = ts

    # -- snapshot ----------------------------------------------------------------------
    def demand_rates(self, window_s: float) -> pl.DataFrame:
        """Per (prefix, link): bytes over the newest ``window_s`` seconds as bits/s, and samples."""
        newest = self.newest.get("flows")
        if newest is None or self.demand.height == 0:
            return pl.DataFrame(
                schema={"prefix": pl.String, "link_id": pl.String, "rate_bps": pl.Float64, "samples": pl.UInt64}
            )
        lo = (newest - window_s) * 1000
        recent = self.demand.filter(pl.col("window_start_ms") >= lo)
        oldest_ms = cast(int, recent["window_start_ms"].min())
        covered = max(1.0, min(window_s, (newest * 1000 - oldest_ms) / 1000)) if recent.height else window_s
        return (
            recent.group_by("prefix", "link_id")
            .agg(sum_u64("bytes"), sum_u64("samples"))
            .with_columns((pl.col("bytes").cast(pl.Float64) * 8 / covered).alias("rate_bps"))
            .select("prefix", "link_id", "rate_bps", "samples")
            .sort("prefix", "link_id")
        )

    def snapshot(self, demand_window_s: float) -> Snapshot:
        b = SnapshotBuilder(self.pop)
        for link_id in sorted(self.links):
            inv = self.links[link_id]
            c = self.counters.get(link_id)
            b.add_link(
                LinkState(
                    link_id=link_id,
                    router=inv.router,
                    capacity_bps=inv.capacity_bps,
                    rate_bps=None if c is None else c.out_bps,
                    up=True if c is None else c.oper_up,
                    drained=inv.drained,
                    peer_type=inv.peer_type,
                    peer_asn=inv.peer_asn,
                    speed_bps=None if c is None else c.speed_bps,
                    thresholds=Thresholds(
                        hi=inv.thresholds.hi,
                        target=inv.thresholds.target,
                        alt_max=inv.thresholds.alt_max,
                        release=inv.thresholds.release,
                    ),
                    updated_at=None if c is None else c.ts,
                )
            )
        for (link_id, prefix), r in sorted(self.routes.items()):
            if link_id in self.links:
                b.add_route(
                    link_id,
                    prefix,
                    local_pref=r.local_pref,
                    as_path=r.as_path,
                    origin=r.origin,
                    med=r.med,
                    next_hop=r.next_hop,
                )
        for prefix, link_id, rate, samples in self.demand_rates(demand_window_s).iter_rows():
            if link_id in self.links and prefix:
                b.add_demand(prefix, link_id, float(rate), int(samples))
        for name, ts in self.newest.items():
            # The RIB is state, not a stream: a route unchanged for an hour is still current,
            # so the time of its last change says nothing about staleness. Only flows and
            # counters, which arrive continuously, gate the planner (fail-static).
            if name != "rib":
                b.watermark(name, ts)
        return b.build()


def _empty_demand() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "window_start_ms": pl.Int64,
            "window_s": pl.UInt32,
            "link_id": pl.String,
            "prefix": pl.String,
            "bytes": pl.UInt64,
            "samples": pl.UInt64,
        }
    )


def _prefix_text(df: pl.DataFrame) -> pl.Series:
    """dst_prefix (16-byte, IPv4-mapped) + dst_prefix_len -> CIDR text, once per distinct pair."""
    pairs = df.select("dst_prefix", "dst_prefix_len").unique()
    texts = []
    for addr, length in pairs.iter_rows():
        if length == 0 and addr == b"\x00" * 16:
            texts.append("")  # no route matched this destination
            continue
        ip = ipaddress.IPv6Address(bytes(addr))
        if ip.ipv4_mapped is not None:
            texts.append(str(ipaddress.IPv4Network((int(ip.ipv4_mapped), int(length)), strict=False)))
        else:
            texts.append(str(ipaddress.IPv6Network((int(ip), int(length)), strict=False)))
    lookup = pairs.with_columns(pl.Series("prefix", texts, pl.String))
    return df.join(lookup, on=["dst_prefix", "dst_prefix_len"], how="left", maintain_order="left")["prefix"]
