"""What the planner reads (a per-PoP snapshot) and what it returns (a plan).

The snapshot is columnar: links are a handful of objects, but routes and demand are numpy
columns that refer to links and to interned prefixes by index, because a PoP carries ~1e5
prefixes and the planner must finish a cycle in well under a second
(``bench/bench_planner.py``). Build one with :class:`SnapshotBuilder`; it validates every
value and names the offending field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from netpilot.wire.autopilot import Mode
from streams.autopilot import prefixes as px
from streams.autopilot.errors import ScenarioError
from streams.autopilot.state import PlannerState

Action = Literal["ADD", "REFRESH", "WITHDRAW"]
Reason = Literal[
    "OVERLOAD", "ROUTE_WITHDRAWN", "ALT_OVERLOAD", "LINK_DOWN", "DRAINED", "RELEASE", "TTL", "KILL_SWITCH", "STICKY"
]
ORIGIN_RANK = {"igp": 0, "egp": 1, "incomplete": 2}
_LOW64 = (1 << 64) - 1
MAX_SAMPLES = 1 << 53
"""Sample counts are clamped here: exact in float64 (placement sums them with bincount) and
far inside int64 (a saturated UInt64 sum from the aggregates must not raise OverflowError)."""


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Fractions of capacity; ``None`` means "use the policy default for the peer type"."""

    hi: float | None = None
    target: float | None = None
    alt_max: float | None = None
    release: float | None = None


@dataclass(frozen=True, slots=True)
class LinkState:
    """One egress link of the PoP as the planner sees it this cycle."""

    link_id: str
    router: str
    capacity_bps: float
    """Configured capacity (may be below the port speed)."""
    rate_bps: float | None = None
    """Egress rate from interface counters (authoritative); None = not known."""
    up: bool = True
    drained: bool = False
    """Drained/maintenance/excluded: never an alternate."""
    peer_type: str = "transit"
    peer_asn: int | None = None
    speed_bps: float | None = None
    """Oper speed x members up; the usable capacity is min(capacity, speed)."""
    thresholds: Thresholds = Thresholds()
    v6_blackhole: bool = False
    """History of blackholing IPv6 (Edge Fabric fn.5): not an alternate for v6 prefixes."""
    updated_at: float | None = None
    """When the counters were last read; None = not checked for staleness."""

    @property
    def usable_bps(self) -> float:
        if self.speed_bps is not None and self.speed_bps > 0:
            return min(self.capacity_bps, self.speed_bps)
        return self.capacity_bps


@dataclass(frozen=True, eq=False)
class RouteTable:
    """All paths of the PoP's union RIB, one row per (link, prefix, path)."""

    prefix: np.ndarray  # int32 index into Snapshot.prefixes
    link: np.ndarray  # int32 index into Snapshot.links
    local_pref: np.ndarray  # int64
    path_len: np.ndarray  # int32
    origin: np.ndarray  # int8, ORIGIN_RANK
    med: np.ndarray  # int64
    own: np.ndarray  # bool: injected by this controller (ignored, Packeteer route check)
    next_hop: tuple[str | None, ...]
    as_path: tuple[tuple[int, ...], ...]

    def __len__(self) -> int:
        return int(self.prefix.shape[0])


@dataclass(frozen=True, eq=False)
class DemandTable:
    """Measured demand: one row per (prefix, link the traffic was seen leaving on)."""

    prefix: np.ndarray  # int32 index into Snapshot.prefixes
    link: np.ndarray  # int32 index into Snapshot.links
    rate_bps: np.ndarray  # float64, sampling-corrected, averaged over the demand window
    samples: np.ndarray  # int64, samples behind the rate (confidence interval), <= MAX_SAMPLES

    def __len__(self) -> int:
        return int(self.prefix.shape[0])


@dataclass(frozen=True, eq=False)
class Snapshot:
    """Every input of one PoP for one cycle."""

    pop: str
    links: tuple[LinkState, ...]
    prefixes: tuple[px.Prefix, ...]
    prefix_index: Mapping[px.Prefix, int]
    prefix_len: np.ndarray
    """int16 mapped length of each interned prefix."""
    prefix_v4: np.ndarray
    """bool: the interned prefix is IPv4."""
    prefix_hi: np.ndarray
    """uint64 upper half of the (mapped) network: with prefix_lo, the prefix's value for sorting."""
    prefix_lo: np.ndarray
    """uint64 lower half of the (mapped) network."""
    routes: RouteTable
    demand: DemandTable
    watermarks: Mapping[str, float] = field(default_factory=dict)
    """Newest event time per input ("flows", "counters", "rib"): staleness gate."""

    def link_index(self) -> dict[str, int]:
        return {link.link_id: i for i, link in enumerate(self.links)}


class SnapshotBuilder:
    """Collects a snapshot row by row (scenario files, tests, the faust adapter).

    Example::

        b = SnapshotBuilder("ams1")
        b.add_link(LinkState("pr1:et-0/0/1", "pr1", capacity_bps=10e9, rate_bps=9.7e9))
        b.add_route("pr1:et-0/0/1", "198.51.100.0/24")
        b.add_demand("198.51.100.0/24", "pr1:et-0/0/1", 1.2e9, samples=400)
        snapshot = b.build()
    """

    def __init__(self, pop: str, parsed: dict[str, px.Prefix] | None = None) -> None:
        """``parsed``: a text -> prefix cache to share between the builders of successive
        cycles (a scenario re-builds every cycle from the same routes; parsing is most of it)."""
        self.pop = pop
        self._parsed = parsed if parsed is not None else {}
        self._links: list[LinkState] = []
        self._link_ids: dict[str, int] = {}
        self._prefixes: list[px.Prefix] = []
        self._prefix_ids: dict[px.Prefix, int] = {}
        self._text_ids: dict[str, int] = {}
        self._routes: list[tuple[int, int, int, int, int, int, bool]] = []
        self._next_hops: list[str | None] = []
        self._as_paths: list[tuple[int, ...]] = []
        self._demand: list[tuple[int, int, float, int]] = []
        self._route_chunks: list[tuple[np.ndarray, ...]] = []
        self._demand_chunks: list[tuple[np.ndarray, ...]] = []
        self._watermarks: dict[str, float] = {}

    def add_link(self, link: LinkState) -> None:
        if link.link_id in self._link_ids:
            raise ScenarioError(f"link {link.link_id!r} is listed twice")
        if not (math.isfinite(link.capacity_bps) and link.capacity_bps > 0):
            raise ScenarioError(f"link {link.link_id!r}: capacity_bps must be > 0, got {link.capacity_bps!r}")
        if link.rate_bps is not None and not (math.isfinite(link.rate_bps) and link.rate_bps >= 0):
            raise ScenarioError(f"link {link.link_id!r}: rate_bps must be >= 0, got {link.rate_bps!r}")
        self._link_ids[link.link_id] = len(self._links)
        self._links.append(link)

    def add_route(
        self,
        link_id: str,
        prefix: str,
        *,
        local_pref: int = 100,
        as_path: tuple[int, ...] = (),
        origin: str = "igp",
        med: int = 0,
        next_hop: str | None = None,
        own: bool = False,
    ) -> None:
        if self._route_chunks:  # next_hop/as_path rows must stay in the order of the columns
            raise RuntimeError("add_route after add_route_columns: add the row-wise routes first")
        if origin not in ORIGIN_RANK:
            raise ScenarioError(
                f"route {prefix} on {link_id}: origin must be one of {sorted(ORIGIN_RANK)}, got {origin!r}"
            )
        if local_pref < 0 or med < 0:
            raise ScenarioError(f"route {prefix} on {link_id}: local_pref and med must be >= 0")
        self._routes.append(
            (
                self._prefix(prefix),
                self._link(link_id, f"route {prefix}"),
                local_pref,
                len(as_path),
                ORIGIN_RANK[origin],
                med,
                own,
            )
        )
        self._next_hops.append(next_hop)
        self._as_paths.append(tuple(as_path))

    def add_demand(self, prefix: str, link_id: str, rate_bps: float, samples: int = 0) -> None:
        if not (math.isfinite(rate_bps) and rate_bps >= 0):
            raise ScenarioError(f"demand {prefix} on {link_id}: rate must be a number >= 0, got {rate_bps!r}")
        if samples < 0:
            raise ScenarioError(f"demand {prefix} on {link_id}: samples must be >= 0")
        self._demand.append(
            (
                self._prefix(prefix),
                self._link(link_id, f"demand {prefix}"),
                float(rate_bps),
                min(int(samples), MAX_SAMPLES),
            )
        )

    def add_route_columns(
        self,
        what: str,
        link_ids: Sequence[str],
        prefixes: Sequence[str],
        *,
        local_pref: np.ndarray,
        med: np.ndarray,
        origin: Sequence[str],
        as_paths: Sequence[tuple[int, ...]],
        next_hops: Sequence[str | None],
        own: np.ndarray,
    ) -> None:
        """Many routes at once (columnar scenario files): the same checks as :meth:`add_route`,
        per distinct value rather than per row, and the first bad row named in the error."""
        n = len(prefixes)
        bad = np.flatnonzero((local_pref < 0) | (med < 0))
        if len(bad):
            raise ScenarioError(f"{what} row {int(bad[0])}: local_pref and med must be >= 0")
        origin_rank = np.empty(n, np.int8)
        for value, rows in _groups(origin).items():
            if value not in ORIGIN_RANK:
                raise ScenarioError(f"{what} row {rows[0]}: origin must be one of {sorted(ORIGIN_RANK)}, got {value!r}")
            origin_rank[rows] = ORIGIN_RANK[value]
        self._route_chunks.append(
            (
                self._prefix_column(prefixes, what),
                self._link_column(link_ids, what),
                local_pref.astype(np.int64),
                np.fromiter(map(len, as_paths), np.int32, n),
                origin_rank,
                med.astype(np.int64),
                own.astype(np.bool_),
            )
        )
        self._next_hops.extend(next_hops)
        self._as_paths.extend(as_paths)

    def add_demand_columns(
        self, what: str, link_ids: Sequence[str], prefixes: Sequence[str], rate_bps: np.ndarray, samples: np.ndarray
    ) -> None:
        """Many demand rows at once (columnar scenario files), checked like :meth:`add_demand`."""
        rate = np.asarray(rate_bps, np.float64)
        bad = np.flatnonzero(~(np.isfinite(rate) & (rate >= 0)))
        if len(bad):
            raise ScenarioError(f"{what} row {int(bad[0])}: rate must be a number >= 0, got {rate[bad[0]]!r}")
        count = np.asarray(samples, np.int64)
        bad = np.flatnonzero(count < 0)
        if len(bad):
            raise ScenarioError(f"{what} row {int(bad[0])}: samples must be >= 0")
        self._demand_chunks.append(
            (
                self._prefix_column(prefixes, what),
                self._link_column(link_ids, what),
                rate,
                np.minimum(count, MAX_SAMPLES),
            )
        )

    def _prefix_column(self, texts: Sequence[str], what: str) -> np.ndarray:
        ids = self._text_ids
        for text in dict.fromkeys(texts):  # each distinct prefix parsed once, in row order
            if text not in ids:
                try:
                    self._prefix(text)
                except ScenarioError as exc:
                    raise ScenarioError(f"{what} row {list(texts).index(text)}: {exc}") from None
        return np.fromiter((ids[t] for t in texts), np.int32, len(texts))

    def _link_column(self, link_ids: Sequence[str], what: str) -> np.ndarray:
        for link_id in dict.fromkeys(link_ids):
            self._link(link_id, f"{what} row {list(link_ids).index(link_id)}")
        ids = self._link_ids
        return np.fromiter((ids[l] for l in link_ids), np.int32, len(link_ids))

    def watermark(self, name: str, ts: float) -> None:
        self._watermarks[name] = float(ts)

    def build(self) -> Snapshot:
        r = self._routes
        d = self._demand
        # Row-wise additions first, then the columnar chunks, in the order the rows of
        # next_hop/as_path were appended (add_route and add_route_columns are not mixed
        # out of order: the row-wise ones of a builder all come before any chunk).
        rc = self._route_chunks
        dc = self._demand_chunks
        routes = RouteTable(
            prefix=_column(r, 0, np.int32, rc),
            link=_column(r, 1, np.int32, rc),
            local_pref=_column(r, 2, np.int64, rc),
            path_len=_column(r, 3, np.int32, rc),
            origin=_column(r, 4, np.int8, rc),
            med=_column(r, 5, np.int64, rc),
            own=_column(r, 6, np.bool_, rc),
            next_hop=tuple(self._next_hops),
            as_path=tuple(self._as_paths),
        )
        demand = DemandTable(
            prefix=_column(d, 0, np.int32, dc),
            link=_column(d, 1, np.int32, dc),
            rate_bps=_column(d, 2, np.float64, dc),
            samples=_column(d, 3, np.int64, dc),
        )
        n = len(self._prefixes)
        return Snapshot(
            pop=self.pop,
            links=tuple(self._links),
            prefixes=tuple(self._prefixes),
            prefix_index=dict(self._prefix_ids),
            prefix_len=np.fromiter((p[1] for p in self._prefixes), np.int16, n),
            prefix_v4=np.fromiter((px.is_v4(p) for p in self._prefixes), np.bool_, n),
            prefix_hi=np.fromiter((p[0] >> 64 for p in self._prefixes), np.uint64, n),
            prefix_lo=np.fromiter((p[0] & _LOW64 for p in self._prefixes), np.uint64, n),
            routes=routes,
            demand=demand,
            watermarks=dict(self._watermarks),
        )

    def _link(self, link_id: str, what: str) -> int:
        try:
            return self._link_ids[link_id]
        except KeyError:
            raise ScenarioError(
                f"{what}: unknown link {link_id!r}; add it to the links first (known: {sorted(self._link_ids)})"
            ) from None

    def _prefix(self, text: str) -> int:
        idx = self._text_ids.get(text)
        if idx is None:
            key = self._parsed.get(text)
            if key is None:
                key = self._parsed[text] = px.parse(text)
            idx = self._prefix_ids.get(key)
            if idx is None:
                idx = self._prefix_ids[key] = len(self._prefixes)
                self._prefixes.append(key)
            self._text_ids[text] = idx
        return idx


def _column(rows: list[tuple[Any, ...]], i: int, dtype: type, chunks: list[tuple[np.ndarray, ...]]) -> np.ndarray:
    head: np.ndarray = np.fromiter((x[i] for x in rows), dtype, len(rows))
    return np.concatenate([head, *(c[i].astype(dtype, copy=False) for c in chunks)]) if chunks else head


def _groups(values: Sequence[Any]) -> dict[Any, list[int]]:
    """Distinct value -> the rows holding it (a scenario column has few distinct links, and
    each distinct prefix is parsed once)."""
    out: dict[Any, list[int]] = {}
    for row, value in enumerate(values):
        out.setdefault(value, []).append(row)
    return out


# ---------------------------------------------------------------------------------------------
# Output


@dataclass(frozen=True, slots=True)
class PlanItem:
    """One ADD / REFRESH / WITHDRAW for ``pop|prefix``.

    ``*_before``/``*_after`` are projected utilisations of the two links just before and
    just after this action, in the order the planner took the actions (REFRESH: equal).
    """

    action: Action
    reason: Reason
    rank: int
    prefix: str
    afi: Literal[4, 6]
    split_from: str | None
    rate_bps: float
    samples: int
    from_link: str
    from_links: tuple[str, ...]
    """Every native link (ECMP set); ``from_link`` is the one the decision was about."""
    to_link: str
    from_before: float | None
    from_after: float | None
    to_before: float | None
    to_after: float | None
    thresholds: Mapping[str, float]
    route_prefix: str | None
    next_hop: str | None
    as_path: tuple[int, ...]
    created_at: float
    hold_until: float
    valid_until: float


@dataclass(frozen=True, slots=True)
class CycleReport:
    """The cycle summary: what was overloaded, what is left, what moved, what was wrong."""

    overloaded: tuple[str, ...]
    unresolved_bps: Mapping[str, float]
    adds: int
    refreshes: int
    withdraws: int
    active_overrides: int
    detoured_bps: float
    stale: tuple[str, ...]
    implausible: tuple[str, ...]
    fail_static: bool
    kill_switch: bool
    diff_rejected: bool
    util_no_override: Mapping[str, float]
    """U0: projected utilisation as if no override were in place."""
    util_projected: Mapping[str, float]
    """Projected utilisation with this plan's overrides in place."""
    util_actual: Mapping[str, float]
    """Counter rate / capacity (monitoring; projection accuracy)."""
    projection_error: Mapping[str, float] = field(default_factory=dict)
    """Per link with counters: actual utilisation minus what the previous cycle expected."""
    misprojected: tuple[str, ...] = ()
    """Links whose |projection error| has exceeded the threshold for misprojection_after_s."""
    trigger: Mapping[str, float] = field(default_factory=dict)
    """Per link, the trigger (T_hi) the policy gave it this cycle."""
    moves_lower_bound: int = 0
    """The fewest moves that could relieve this cycle's overloads (selection.lower_bound,
    summed over the overloaded links); 0 when nothing needed moving."""
    moves_ratio: float | None = None
    """ADDs of this cycle / moves_lower_bound: how far from the bound the cycle was (None
    when the bound is 0)."""


@dataclass(frozen=True, slots=True)
class Plan:
    pop: str
    cycle_id: str
    now: float
    mode: Mode
    items: tuple[PlanItem, ...]
    report: CycleReport
    state: PlannerState
    """State to keep for the next cycle (faust: ``table[pop] = plan.state.to_dict()``)."""

    def by_action(self, action: Action) -> tuple[PlanItem, ...]:
        return tuple(i for i in self.items if i.action == action)
