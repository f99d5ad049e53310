"""Open windows kept in a key-value store: a faust Table in the worker, a dict in tests.

Why this layout (and not one key per flow group, or one key per PoP):

* faust pays ~55-120 us per table update (docs/streams.md), so state is keyed *coarsely*:
  one value per (PoP, window size, window start, source batch), holding that batch's
  partial for that window as one flow-aggregates/1 Arrow IPC blob. A batch touches a
  handful of windows, so a 10k-flow batch costs a handful of table writes.
* keying by the *source batch* (``partition.offset`` of the flows message) makes replays
  idempotent: after a crash faust re-delivers uncommitted messages, and each rewrites the
  same key with the same value instead of adding its bytes a second time.
* partials are merged only when their window closes, so a batch never rewrites (and the
  changelog never re-ships) a growing per-window blob.

Keys: ``p|<pop>|<window_s>|<window_start_ms>|<source>`` for partials, ``w|<pop>`` for
the PoP's max event time and ``i|<pop>`` for its idle watermark (both ms, decimal text;
see :meth:`WindowStore.advance_idle`). ``<pop>`` must not contain ``|`` (the
catalog's ``pop|...`` keys already rely on that).
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from streams.aggregate import windows as w


@dataclass(frozen=True)
class AddOutcome:
    batch: w.BatchResult
    pops: tuple[str, ...]
    """PoPs in the batch whose watermark crossed a window boundary (worth closing)."""
    seen: tuple[str, ...] = ()
    """Every PoP the batch held flows of (they are not idle)."""


def _text(key: object) -> str:
    return key.decode() if isinstance(key, (bytes, bytearray)) else str(key)


class WindowStore:
    """Partial windows in ``store``; a decoded copy of what this process wrote is cached."""

    def __init__(self, spec: w.WindowSpec, store: MutableMapping) -> None:
        self.spec = spec
        self._store = store
        self._cache: dict[str, pl.DataFrame] = {}

    # -- watermarks --------------------------------------------------------------------
    def max_event(self, pop: str) -> int | None:
        raw = self._store.get(f"w|{pop}")
        return None if raw is None else int(_text(raw))

    def idle_watermark(self, pop: str) -> int:
        raw = self._store.get(f"i|{pop}")
        return w.NO_WATERMARK if raw is None else int(_text(raw))

    def watermark(self, pop: str) -> int:
        """The flows' watermark, or the idle one if that is further (never goes back)."""
        return max(w.watermark(self.max_event(pop), self.spec), self.idle_watermark(pop))

    def advance_idle(self, pop: str, watermark_ms: int) -> int | None:
        """Move an idle PoP's watermark to ``watermark_ms`` (the caller decides it is idle:
        no flows for a while); returns the watermark it had, or None if it was already there.

        Why: windows close only when flows move the watermark, so a PoP whose exporters
        stop would keep its last windows open, unpublished, for ever. Flows that come
        later for windows closed this way are too late, like any other late flow.
        """
        before = self.watermark(pop)
        if watermark_ms <= before:
            return None
        self._store[f"i|{pop}"] = str(int(watermark_ms)).encode()
        return before

    # -- adding ------------------------------------------------------------------------
    def add(self, flows: pa.Table, source: str, now_ms: int | None = None) -> AddOutcome:
        """Aggregate one flows batch and store its partials under ``source``."""
        pops = [p for p in pc.unique(flows.column("pop").cast(pa.string())).to_pylist() if p is not None]
        before = {pop: self.watermark(pop) for pop in pops}
        batch = w.aggregate_batch(flows, self.spec, before, now_ms)
        if batch.partials.height:
            groups = batch.partials.partition_by(["pop", "window_s", "window_start"], as_dict=True)
            for (pop, size, start), part in groups.items():
                key = f"p|{pop}|{size}|{start}|{source}"
                self._store[key] = w.encode_partial(part)
                self._cache[key] = part
        crossed = []
        for pop, t in batch.max_event_ms.items():
            old = self.max_event(pop)
            if old is None or t > old:
                self._store[f"w|{pop}"] = str(t).encode()
                if w.boundary_crossed(before[pop], self.watermark(pop), self.spec):
                    crossed.append(pop)
        return AddOutcome(batch=batch, pops=tuple(crossed), seen=tuple(pops))

    # -- closing -----------------------------------------------------------------------
    def closable(self, pops: Iterable[str]) -> tuple[pl.DataFrame, list[object]]:
        """Merged closed windows of ``pops`` and the keys that held them.

        Nothing is removed: the caller publishes the frame, then calls :meth:`discard`
        with the keys, so a failed publish leaves the windows in place for the next try.
        """
        wms = {pop: self.watermark(pop) for pop in pops}
        parts: list[pl.DataFrame] = []
        keys: list[object] = []
        for key in list(self._store.keys()):
            text = _text(key)
            if not text.startswith("p|"):
                continue
            _, pop, size, start, _source = text.split("|", 4)
            wm = wms.get(pop)
            if wm is None or not w.is_closed(int(start), int(size), wm):
                continue
            part = self._cache.get(text)
            if part is None:  # written before a restart: restored from the changelog
                part = w.decode_partial(bytes(self._store[key]))
            parts.append(part)
            keys.append(key)
        return w.merge_partials(parts), keys

    def discard(self, keys: Iterable[object]) -> None:
        for key in keys:
            self._store.pop(key, None)
            self._cache.pop(_text(key), None)

    def open_keys(self) -> int:
        return sum(1 for k in self._store.keys() if _text(k).startswith("p|"))

    def pops(self) -> list[str]:
        """PoPs with a watermark (flows seen, or advanced while idle)."""
        return sorted({_text(k)[2:] for k in self._store.keys() if _text(k)[:2] in ("w|", "i|")})
