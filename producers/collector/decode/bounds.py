"""Plausibility bounds on decoded flows: refuse what no real exporter sends, count why.

A datagram can be well formed and still carry nonsense: a mutated or buggy export gives
1.8e19 bytes, a flow stamped an hour ahead, a sampling rate that makes ``bytes * rate``
wrap around 2^64. Downstream such a flow is worse than a lost one: it overloads every link
of its PoP in the aggregates and moves the streams watermark so that every honest flow of
the window is "too late". So each decoded batch is checked here, columnar, before it is
enriched and published; a refused flow is dropped and counted under one reason (the first
bound it breaks, in the order of :data:`REFUSED`).

The bounds (defaults in :class:`FlowBounds`, settable under the collector's
``plausibility:`` section; docs/collector.md says why each default):

* ``bytes_per_packet``: bytes / packets outside ``[min, max]`` (an IP packet is 20 to 65,535
  bytes; a flow with bytes but no packets counts as infinite);
* ``packets_per_flow``: more sampled packets in one record than ``max_packets_per_flow``;
* ``scaled_overflow``: ``bytes * sampling rate`` above ``max_scaled_bytes``, or not what the
  decoder stored (it wrapped, or the rate did not fit the 32-bit column);
* ``duration``: ``time_end`` before ``time_start`` or more than ``max_duration_s`` after it;
* firewall event records (``fw_event`` not 0, NSEL) may have bytes without packets (packets
  unknown) and a start days ago (the connection's creation): those two tests skip them;
* ``flow_rate``: the sampling-corrected bits per second (over the flow's duration, at least
  one second) above ``max_flow_bps``: no single flow outruns the ports it can hash onto;
* ``time_future`` / ``time_past``: ``time_end`` more than ``max_future_s`` after, or more
  than ``max_past_s`` before, the time the collector received the datagram.

Pure numpy, no clock: the receive time is the ``time_received`` column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from netpilot.wire.flows import addr_to_str


class Refused:
    """Reasons a decoded flow is refused (metric label values, like errors.Reason)."""

    BYTES_PER_PACKET = "bytes_per_packet"
    PACKETS_PER_FLOW = "packets_per_flow"
    SCALED_OVERFLOW = "scaled_overflow"
    DURATION = "duration"
    FLOW_RATE = "flow_rate"
    TIME_FUTURE = "time_future"
    TIME_PAST = "time_past"


REFUSED: tuple[str, ...] = tuple(v for k, v in vars(Refused).items() if not k.startswith("_"))
"""Every reason, in the order the bounds are checked."""


@dataclass(frozen=True)
class FlowBounds:
    min_bytes_per_packet: int = 20
    """Smallest IPv4 header; sFlow frame lengths include the MAC header, so they clear it."""
    max_bytes_per_packet: int = 65_535
    """Largest IP total length (jumbograms aside); averaged over the flow's packets."""
    max_packets_per_flow: int = 1 << 40
    """~1.1e12 sampled packets: half an hour of a 400 Gbit/s port of 64-byte frames at 1:1."""
    max_scaled_bytes: int = 1 << 50
    """~1.1e15 bytes after sampling correction: 400 Gbit/s for six hours, in one flow."""
    max_duration_s: float = 86_400.0
    """A day; exporters cut long flows at their active timeout (minutes)."""
    max_flow_bps: float = 1.6e12
    """Four 400 Gbit/s ports: more than any one flow can hash onto, even a LAG's worth of
    pre-aggregated records. Mutated sampling rates are the garbage this catches."""
    max_future_s: float = 60.0
    """How far ``time_end`` may be ahead of the receive time (exporter clock skew)."""
    max_past_s: float = 3_600.0
    """How far ``time_end`` may be behind the receive time (export delay, replays)."""

    def __post_init__(self) -> None:
        if not 0 <= self.min_bytes_per_packet <= self.max_bytes_per_packet:
            raise ValueError("need 0 <= min_bytes_per_packet <= max_bytes_per_packet")
        if min(self.max_packets_per_flow, self.max_scaled_bytes, self.max_flow_bps) <= 0:
            raise ValueError("max_packets_per_flow, max_scaled_bytes and max_flow_bps must be > 0")
        if min(self.max_duration_s, self.max_future_s, self.max_past_s) < 0:
            raise ValueError("max_duration_s, max_future_s and max_past_s must be >= 0")


@dataclass(frozen=True)
class Verdict:
    keep: np.ndarray
    """bool per flow: within every bound."""
    counts: dict[str, int]
    """Refused flows per reason (only reasons with at least one)."""
    examples: dict[str, str]
    """Per reason, the first refused flow described in one line (for a rate-limited log)."""


def check(cols: dict[str, np.ndarray], bounds: FlowBounds) -> Verdict:
    """Which flows of a decoded batch (``DECODED_FIELDS`` columns) are plausible."""
    b = bounds
    nbytes = cols["bytes"].astype(np.float64)
    packets = cols["packets"].astype(np.float64)
    rate = cols["sampling_rate"].astype(np.uint64)
    # the product as the decoder would store it (uint64 wraps) against the true one (float)
    stored = cols["bytes"].astype(np.uint64) * rate
    scaled = nbytes * rate
    end, start, received = cols["time_end"], cols["time_start"], cols["time_received"]
    duration = end - start
    # Firewall event records (NSEL) are not flows: an ASA 8.2 teardown has bytes but no packet
    # count (packets unknown, not zero), and its start is the connection's creation, which
    # may be days ago. Those two bounds do not apply to them; the others do.
    fw_event = cols.get("fw_event")
    firewall = np.zeros(len(nbytes), np.bool_) if fw_event is None else fw_event != 0
    tests = {
        # bytes/packets outside [min, max], without a division: bytes with 0 packets is out
        # (unless a firewall event's packets are unknown), 0 bytes in 0 packets is in
        Refused.BYTES_PER_PACKET: (
            (nbytes < b.min_bytes_per_packet * packets) | (nbytes > b.max_bytes_per_packet * packets)
        )
        & ~(firewall & (packets == 0)),
        Refused.PACKETS_PER_FLOW: packets > b.max_packets_per_flow,
        Refused.SCALED_OVERFLOW: (scaled > b.max_scaled_bytes) | (stored != cols["bytes_scaled"]),
        Refused.DURATION: (duration < 0) | ((duration > b.max_duration_s * 1000) & ~firewall),
        # bits per second over max(duration, 1 s), without a division
        Refused.FLOW_RATE: scaled * 8000 > b.max_flow_bps * np.maximum(duration, 1000),
        Refused.TIME_FUTURE: end > received + int(b.max_future_s * 1000),
        Refused.TIME_PAST: end < received - int(b.max_past_s * 1000),
    }
    n = len(nbytes)
    refused = np.zeros(n, np.bool_)
    counts: dict[str, int] = {}
    examples: dict[str, str] = {}
    for reason, bad in tests.items():
        new = bad & ~refused  # each flow counts once, under the first bound it breaks
        hit = int(np.count_nonzero(new))
        if hit:
            counts[reason] = hit
            examples[reason] = _describe(cols, int(np.argmax(new)))
            refused |= new
    return Verdict(~refused, counts, examples)


def _describe(cols: dict[str, np.ndarray], i: int) -> str:
    exporter = cols["exporter"]
    who = addr_to_str(bytes(exporter[i] if exporter.ndim == 2 else exporter))
    fields = ("bytes", "packets", "sampling_rate", "bytes_scaled", "time_start", "time_end", "time_received")
    return f"exporter {who}: " + " ".join(f"{k}={int(cols[k][i])}" for k in fields)
