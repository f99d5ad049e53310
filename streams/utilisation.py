"""Link utilisation per link and window: counters (authoritative) vs flows, against capacity.

Pure: no Kafka, faust or clock. State lives in three ``MutableMapping[str, bytes]`` (faust
Tables with changelogs in the worker, dicts in tests):

* ``inventory``  ``pop|link_id`` -> link-inventory/1 JSON (capacity, router, if_index);
* ``counters``   ``pop|link_id`` -> JSON list of recent ``[ts, interval_s, out_bps]``;
* ``pending``    ``pop|link_id|window_s|window_start_ms`` -> flow bytes (decimal text):
  windows whose flows are final (the aggregation closed them) waiting for counters.

Why windows wait: a counter reading at ``ts`` describes ``[ts - interval_s, ts]``, and the
poll that covers a window's end arrives up to one poll interval after it. A window is
published once a reading at or past its end exists for the link, or once the PoP's
watermark is ``max_counter_wait_s`` past its end (then with whatever counters overlap it,
possibly none: ``counter_bps`` and ``coverage`` are then null, never a made-up number).

Counter rate for a window = time-weighted mean of the readings' ``out_bps`` over their
overlap with the window; it is null when readings cover less than ``min_counter_overlap``
of the window. Egress only: flows are accounted on their output interface.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass

import polars as pl

from netpilot.wire.links import LinkInventory, LinkStats, LinkUtilisation
from streams.arith import sum_u64

Store = MutableMapping  # of str -> bytes; faust Tables return keys as given or as bytes


@dataclass(frozen=True)
class UtilisationSpec:
    max_counter_wait_s: float = 120.0
    min_counter_overlap: float = 0.5
    counter_history_s: float = 900.0
    """Readings older than this (relative to the newest) are forgotten."""
    unknown_link_wait_s: float = 3600.0
    """Event time a window of a link missing from the inventory waits for it (at start-up
    the inventory topic can be read after the first flows) before it is dropped."""
    unknown_stats_hold_s: float = 300.0
    """Readings that match no inventory link are held this long (relative to the newest of
    their interface) in case the inventory names it later: at start-up the link-stats topic
    can be read before the inventory."""
    max_held_interfaces: int = 20_000
    """Bound on the interfaces held that way (routers export counters for every interface)."""


def _text(key: object) -> str:
    return key.decode() if isinstance(key, (bytes, bytearray)) else str(key)


def counter_bps(
    readings: Iterable[tuple[float, float, float]], start_s: float, end_s: float, min_overlap: float
) -> float | None:
    """Time-weighted mean rate of ``(ts, interval_s, out_bps)`` readings over a window."""
    covered = 0.0
    weighted = 0.0
    for ts, interval, bps in readings:
        overlap = min(ts, end_s) - max(ts - interval, start_s)
        if overlap > 0:
            covered += overlap
            weighted += bps * overlap
    if covered < min_overlap * (end_s - start_s) or covered <= 0:
        return None
    return weighted / covered


def flow_bytes_per_link(closed: pl.DataFrame) -> pl.DataFrame:
    """Per (pop, link_id, window_s, window_start) the summed bytes of closed aggregates."""
    return closed.group_by("pop", "link_id", "window_s", "window_start").agg(sum_u64("bytes"))


def utilisation(
    link: LinkInventory,
    window_start_s: float,
    window_s: float,
    flow_bytes: int,
    readings: Iterable[tuple[float, float, float]],
    spec: UtilisationSpec,
) -> LinkUtilisation:
    flow_bps = flow_bytes * 8 / window_s
    c_bps = counter_bps(readings, window_start_s, window_start_s + window_s, spec.min_counter_overlap)
    # counters are authoritative for utilisation; flows only say how much they explain
    return LinkUtilisation(
        pop=link.pop,
        link_id=link.link_id,
        window_start=window_start_s,
        window_s=window_s,
        capacity_bps=link.capacity_bps,
        counter_bps=c_bps,
        flow_bps=flow_bps,
        utilisation=None if c_bps is None else c_bps / link.capacity_bps,
        coverage=None if not c_bps else flow_bps / c_bps,
    )


class UtilisationTracker:
    def __init__(self, spec: UtilisationSpec, inventory: Store, counters: Store, pending: Store) -> None:
        self.spec = spec
        self._inventory = inventory
        self._counters = counters
        self._pending = pending
        self.unmatched_stats = 0
        """Counter readings that named no link known to the inventory when they came."""
        self._held: dict[tuple[str, str, str, int | None], list[list[float]]] = {}
        """(pop, link_id or "", router, if_index) -> readings not matched yet. In memory only:
        the race it covers (stats read before the inventory) happens inside one process."""
        self.unknown_link_windows = 0
        """Windows dropped because their link never appeared in the inventory."""

    # -- inputs ------------------------------------------------------------------------
    def set_link(self, key: str, link: LinkInventory | None) -> None:
        """Apply one inventory record; ``None`` is a tombstone (the link is gone). Readings
        held for the link (they came first) join its history."""
        if link is None:
            self._inventory.pop(key, None)
            return
        self._inventory[f"{link.pop}|{link.link_id}"] = link.encode()
        for held in [k for k in self._held if k[0] == link.pop]:
            _pop, link_id, router, if_index = held
            if link_id == link.link_id or (not link_id and (router, if_index) == (link.router, link.if_index)):
                for reading in self._held.pop(held):
                    self._remember(f"{link.pop}|{link.link_id}", reading)

    def links(self, pop: str) -> list[LinkInventory]:
        return [LinkInventory.decode(v) for k, v in list(self._inventory.items()) if _text(k).split("|", 1)[0] == pop]

    def _link_id_for(self, stats: LinkStats) -> str | None:
        if stats.link_id:
            return stats.link_id if f"{stats.pop}|{stats.link_id}" in self._inventory else None
        for link in self.links(stats.pop):
            if link.router == stats.router and link.if_index == stats.if_index:
                return link.link_id
        return None

    def add_stats(self, stats: LinkStats) -> bool:
        """Remember one counter reading; False (and counted) when no link matches it."""
        link_id = self._link_id_for(stats)
        usable = not stats.counter_reset and stats.out_bps is not None and bool(stats.interval_s)
        if link_id is None:
            self.unmatched_stats += 1
            if usable:
                self._hold(stats)
            return False
        if usable:  # else a reading without a rate: known link, nothing to add
            assert stats.interval_s is not None and stats.out_bps is not None  # usable says so
            self._remember(f"{stats.pop}|{link_id}", [stats.ts, stats.interval_s, stats.out_bps])
        return True

    def _remember(self, key: str, reading: list[float]) -> None:
        raw = self._counters.get(key)
        history: list[list[float]] = json.loads(raw) if raw else []
        history.append(list(reading))
        newest = max(r[0] for r in history)
        history = sorted(r for r in history if r[0] >= newest - self.spec.counter_history_s)
        self._counters[key] = json.dumps(history).encode()

    def _hold(self, stats: LinkStats) -> None:
        key = (stats.pop, stats.link_id or "", stats.router or "", stats.if_index)
        if key not in self._held and len(self._held) >= self.spec.max_held_interfaces:
            return  # bounded: still counted in unmatched_stats
        history = self._held.setdefault(key, [])
        history.append([stats.ts, float(stats.interval_s or 0), float(stats.out_bps or 0)])
        newest = max(r[0] for r in history)
        self._held[key] = [r for r in history if r[0] >= newest - self.spec.unknown_stats_hold_s]

    def add_closed(self, closed: pl.DataFrame) -> None:
        """Register windows the aggregation closed.

        Every link with flows in them gets a pending entry, and so does every inventory
        link of the PoP (0 bytes if no flow used it: a coverage of 0, not missing data).
        Links not (yet) in the inventory wait like the others: at start-up the inventory
        topic may be read after the first flows.
        """
        if not closed.height:
            return
        for pop, size, start in closed.select("pop", "window_s", "window_start").unique().iter_rows():
            for link in self.links(pop):
                self._pending.setdefault(f"{pop}|{link.link_id}|{size}|{start}", b"0")
        for pop, link_id, size, start, nbytes in flow_bytes_per_link(closed).iter_rows():
            if link_id:  # "" = the collector found no link for these flows
                self._pending[f"{pop}|{link_id}|{size}|{start}"] = str(int(nbytes)).encode()

    def add_idle_windows(self, pop: str, from_ms: int, to_ms: int, sizes_s: Iterable[int]) -> int:
        """Register, with 0 flow bytes, every window of every inventory link of ``pop`` that
        ends in ``(from_ms, to_ms]``: the PoP's watermark moved there with no flows (see
        ``WindowStore.advance_idle``). Windows that did get flows keep their bytes. Only
        windows inside ``counter_history_s`` of ``to_ms`` (older ones have no readings left).
        Returns how many entries were added.

        Why: counters are authoritative and keep coming when a PoP's flow export breaks;
        the links' utilisation must keep flowing then, with coverage 0 saying what broke.
        """
        links = self.links(pop)
        floor_ms = max(from_ms, to_ms - int(self.spec.counter_history_s * 1000))
        added = 0
        for size in sizes_s:
            size_ms = int(size) * 1000
            for end in range((floor_ms // size_ms + 1) * size_ms, to_ms + 1, size_ms):
                for link in links:
                    key = f"{pop}|{link.link_id}|{size}|{end - size_ms}"
                    if key not in self._pending:
                        self._pending[key] = b"0"
                        added += 1
        return added

    def pops(self) -> list[str]:
        """PoPs of the inventory."""
        return sorted({_text(k).split("|", 1)[0] for k in list(self._inventory.keys())})

    # -- output ------------------------------------------------------------------------
    def ready(self, pop: str, watermark_ms: int) -> list[LinkUtilisation]:
        """Publishable windows of ``pop``; they are removed from ``pending``."""
        out: list[LinkUtilisation] = []
        for key in list(self._pending.keys()):
            text = _text(key)
            k_pop, link_id, size, start = text.split("|")
            if k_pop != pop:
                continue
            start_s, size_s = int(start) / 1000, int(size)
            end_ms = int(start) + size_s * 1000
            waited = watermark_ms >= end_ms + self.spec.max_counter_wait_s * 1000
            raw_link = self._inventory.get(f"{pop}|{link_id}")
            if raw_link is None:
                gave_up = watermark_ms >= end_ms + self.spec.unknown_link_wait_s * 1000
                if gave_up:  # never in the inventory, or deleted: no capacity to compare with
                    self._pending.pop(key, None)
                    self.unknown_link_windows += 1
                continue
            raw = self._counters.get(f"{pop}|{link_id}")
            readings = [tuple(r) for r in json.loads(raw)] if raw else []
            have_end = any(r[0] * 1000 >= end_ms for r in readings)
            if not have_end and not waited:
                continue
            nbytes = int(_text(self._pending[key]))
            out.append(utilisation(LinkInventory.decode(raw_link), start_s, size_s, nbytes, readings, self.spec))
            self._pending.pop(key, None)
        return out
