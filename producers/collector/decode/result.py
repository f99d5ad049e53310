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
)


def _empty(name: str, n: int) -> np.ndarray:
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
    refused: dict[str, str] = field(default_factory=dict)
    """Per plausibility reason (bounds.Refused) with refused flows, the first one described."""

    def keep(self, mask: np.ndarray) -> None:
        """Keep only the flows where ``mask`` is true (one boolean per flow)."""
        if not mask.all():
            self.columns = {k: v[mask] for k, v in self.columns.items()}
            self.n = int(np.count_nonzero(mask))

    def table(self, extra: Mapping[str, Any] | None = None) -> Any:  # a pa.Table (pyarrow is untyped)
        cols: dict[str, Any] = dict(self.columns)
        if extra:
            cols.update(extra)
        return flows.flow_table(cols, n=self.n)


class ChunkBuilder:
    """Collects column chunks and joins them into full columns once."""

    MAX_ERRORS = 20

    def __init__(self) -> None:
        self.chunks: list[tuple[int, dict[str, Any]]] = []  # arrays, or scalars to broadcast
        self.result = DecodeResult(columns={}, n=0)

    def add(self, n: int, cols: dict[str, Any]) -> None:
        if n:
            self.chunks.append((n, cols))

    def drop(self, reason: str, count: int = 1, message: str | None = None) -> None:
        self.result.drops[reason] += count
        if message and len(self.result.errors) < self.MAX_ERRORS:
            self.result.errors.append(message)

    def finish(self) -> DecodeResult:
        total = sum(n for n, _ in self.chunks)
        out: dict[str, np.ndarray] = {}
        for name in DECODED_FIELDS:
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
            if name not in flows.ADDRESS_FIELDS and name not in flows.TIMESTAMP_FIELDS:
                out[name] = out[name].astype(flows.NUMPY_DTYPES[name], copy=False)
        self.result.columns = out
        self.result.n = total
        return self.result
