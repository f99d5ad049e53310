"""What a decode pass returns: flow columns plus everything the service counts.

Columns are accumulated as chunks (one per template group / datagram group) and joined
once at the end, so per-flow work stays inside numpy.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from netpilot.wire import flows
from netpilot.wire.links import LinkStats

# The columns decoders fill; enrich fills pop/router/link_id/dst_prefix*.
DECODED_FIELDS: tuple[str, ...] = (
    "time_received",
    "time_start",
    "time_end",
    "flow_type",
    "exporter",
    "observation_domain",
    "in_if",
    "out_if",
    "src_addr",
    "dst_addr",
    "src_port",
    "dst_port",
    "ip_proto",
    "tcp_flags",
    "bytes",
    "packets",
    "sampling_rate",
    "bytes_scaled",
    "packets_scaled",
    "src_as",
    "dst_as",
    "next_hop",
    "flags",
    "fw_event",
)

PROVENANCE_FIELDS: tuple[str, ...] = ("datagram", "template_id", "sequence", "order")
"""Where each flow came from, filled only with ``DecoderOptions(provenance=True)`` (``netpilot
decode``): the decoder-wide index of its datagram, its template id (0 for v5 and sFlow),
the sequence number in its export header, and a key that sorts flows into capture order
(record by record; the reverse row of a biflow right after its forward row)."""
ORDER_DATAGRAM_SHIFT = 33
ORDER_OFFSET_SHIFT = 17
"""``order`` = datagram << 33 | byte offset of the set << 17 | record << 1 | direction (1 for
the reverse row of a biflow): room for 2^30 datagrams and 65,535 records a set."""


def order_key(datagram: np.ndarray, offset: np.ndarray | int, counts: np.ndarray) -> np.ndarray:
    """The ``order`` of every record of parts (datagram, set offset) of ``counts`` records."""
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    record = np.arange(int(counts.sum()), dtype=np.int64) - starts
    return (
        np.repeat(datagram.astype(np.int64) << ORDER_DATAGRAM_SHIFT, counts)
        | np.repeat(np.asarray(offset, np.int64) << ORDER_OFFSET_SHIFT, counts if np.ndim(offset) else 1)
        | record << 1
    )


_PROVENANCE_DTYPES = {"datagram": np.int64, "template_id": np.uint16, "sequence": np.uint32, "order": np.int64}


def _empty(name: str, n: int) -> np.ndarray:
    if name in _PROVENANCE_DTYPES:
        return np.zeros(n, _PROVENANCE_DTYPES[name])
    if name in flows.ADDRESS_FIELDS:
        return np.zeros((n, 16), np.uint8)
    if name in flows.TIMESTAMP_FIELDS:
        return np.zeros(n, np.int64)
    return np.zeros(n, flows.NUMPY_DTYPES[name])


@dataclass(frozen=True)
class TemplateEvent:
    """A template learned, redefined or withdrawn (the service persists these)."""

    exporter: bytes
    version: int
    domain: int
    template_id: int
    kind: str  # "data" | "options"
    definition: bytes | None  # None = withdrawn
    scope_field_count: int = 0
    source_port: int = 0
    """The exporter's UDP source port (its Transport Session); 0 when scoped by address only."""


@dataclass(frozen=True)
class Explanation:
    """Why something was dropped, for ``netpilot decode --explain``."""

    datagram: int
    """Decoder-wide index of the datagram (``netpilot decode`` prints its frame number)."""
    offset: int | None
    """Byte offset in the datagram where the dropped part starts, when known."""
    reason: str
    count: int
    message: str


@dataclass
class DecodeResult:
    columns: dict[str, np.ndarray]
    n: int
    drops: Counter[str] = field(default_factory=Counter)
    """Dropped items by reason (datagrams, sets or records: see errors.Reason)."""
    datagrams: Counter[tuple[bytes, str]] = field(default_factory=Counter)
    """Datagrams decoded per (exporter, protocol label)."""
    flows: Counter[tuple[bytes, str]] = field(default_factory=Counter)
    """Flows decoded per (exporter, protocol label)."""
    sampling_unknown: int = 0
    link_stats: list[LinkStats] = field(default_factory=list)
    link_stats_exporters: list[bytes] = field(default_factory=list)
    """The exporter (sFlow agent's UDP source) of each ``link_stats`` entry."""
    template_events: list[TemplateEvent] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """A few error messages (bounded) for rate-limited logging by the caller."""
    explained: list[Explanation] = field(default_factory=list)
    """Every drop with where it happened; only with ``DecoderOptions(explain=True)``."""
    refused: dict[str, str] = field(default_factory=dict)
    """Per plausibility reason (bounds.Refused) with refused flows, the first one described."""

    def keep(self, mask: np.ndarray) -> None:
        """Keep only the flows where ``mask`` is true (one boolean per flow)."""
        if not mask.all():
            self.columns = {k: v[mask] for k, v in self.columns.items()}
            self.n = int(np.count_nonzero(mask))

    def table(self, extra: Mapping[str, Any] | None = None) -> Any:  # a pa.Table (pyarrow is untyped)
        cols: dict[str, Any] = {k: v for k, v in self.columns.items() if k not in _PROVENANCE_DTYPES}
        if extra:
            cols.update(extra)
        return flows.flow_table(cols, n=self.n)


class ChunkBuilder:
    """Collects column chunks and joins them into full columns once."""

    MAX_ERRORS = 20
    MAX_EXPLAINED = 100_000

    def __init__(self, provenance: bool = False, explain: bool = False) -> None:
        self.chunks: list[tuple[int, dict[str, Any]]] = []  # arrays, or scalars to broadcast
        self.result = DecodeResult(columns={}, n=0)
        self.provenance = provenance
        self.explain = explain
        # the datagram being decoded (decoders read these for provenance and explanations)
        self.datagram = 0
        self.sequence = 0

    def add(self, n: int, cols: dict[str, Any]) -> None:
        if n:
            self.chunks.append((n, cols))

    def drop(
        self,
        reason: str,
        count: int = 1,
        message: str | None = None,
        offset: int | None = None,
        datagram: int | None = None,
    ) -> None:
        self.result.drops[reason] += count
        if message and len(self.result.errors) < self.MAX_ERRORS:
            self.result.errors.append(message)
        if self.explain and len(self.result.explained) < self.MAX_EXPLAINED:
            self.result.explained.append(
                Explanation(self.datagram if datagram is None else datagram, offset, reason, count, message or reason)
            )

    def finish(self) -> DecodeResult:
        total = sum(n for n, _ in self.chunks)
        out: dict[str, np.ndarray] = {}
        names = DECODED_FIELDS + (PROVENANCE_FIELDS if self.provenance else ())
        for name in names:
            parts = []
            for n, cols in self.chunks:
                v = cols.get(name)
                if v is None:
                    v = _empty(name, n)
                elif np.ndim(v) == 0 or (name in flows.ADDRESS_FIELDS and np.ndim(v) == 1):
                    v = np.broadcast_to(v, (n, 16) if name in flows.ADDRESS_FIELDS else (n,))
                parts.append(v)
            if not parts:
                out[name] = _empty(name, 0)
            elif len(parts) == 1:
                out[name] = np.ascontiguousarray(parts[0])
            else:
                out[name] = np.concatenate(parts)
            if name in _PROVENANCE_DTYPES:
                out[name] = out[name].astype(_PROVENANCE_DTYPES[name], copy=False)
            elif name not in flows.ADDRESS_FIELDS and name not in flows.TIMESTAMP_FIELDS:
                out[name] = out[name].astype(flows.NUMPY_DTYPES[name], copy=False)
        self.result.columns = out
        self.result.n = total
        return self.result
