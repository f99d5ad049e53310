"""Scenario files for ``netpilot autopilot plan`` (format: docs/autopilot-scenarios.md).

A scenario is an inventory (links, routes, optional prior overrides) plus a list of cycles
(counter rates and per-prefix demand per link, and what changes: links, routes, policy).
Anything a cycle does not mention carries over from the cycle before, so a steady state is
one entry with ``repeat: N``. :func:`run` threads the planner state through the cycles
exactly as the streaming worker does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from netpilot.settings import format_validation_error, read_yaml
from streams.autopilot import prefixes as px
from streams.autopilot import tables
from streams.autopilot.errors import ScenarioError
from streams.autopilot.model import LinkState, Plan, Snapshot, SnapshotBuilder, Thresholds
from streams.autopilot.planner import plan
from streams.autopilot.policy import Policy
from streams.autopilot.state import Override, PlannerState

_RATE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKMGT]?)(?:bps|b/s)?\s*$")
_UNIT = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def bandwidth(value: Any) -> float:
    """``10G``, ``250M``, ``1.5e9`` or a number -> bits per second."""
    if isinstance(value, bool):
        raise ValueError(f"expected a rate such as 10G or 2.5e9, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    m = _RATE.match(str(value))
    if not m:
        raise ValueError(f"expected a rate such as 10G, 250M or 2.5e9 (bits/s), got {value!r}")
    return float(m.group(1)) * _UNIT[m.group(2)]


Rate = float | str


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LinkSpec(_Strict):
    id: str
    router: str
    capacity: Rate
    peer_type: str = "transit"
    peer_asn: int | None = None
    speed: Rate | None = None
    up: bool = True
    drained: bool = False
    v6_blackhole: bool = False
    thresholds: dict[str, float] = Field(default_factory=dict)

    @field_validator("thresholds")
    @classmethod
    def _known(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = set(v) - {"hi", "target", "alt_max", "release"}
        if unknown:
            raise ValueError(f"unknown threshold(s) {sorted(unknown)}; use hi, target, alt_max, release")
        return v


class RouteSpec(_Strict):
    prefix: str
    local_pref: int = 100
    as_path: tuple[int, ...] = ()
    origin: str = "igp"
    med: int = 0
    next_hop: str | None = None
    own: bool = False


class DemandSpec(_Strict):
    rate: Rate
    samples: int = 0


class LinkChange(_Strict):
    up: bool | None = None
    drained: bool | None = None
    capacity: Rate | None = None


class InputAges(_Strict):
    """How old each input is at a cycle (seconds; default 0, fresh): the staleness gate."""

    flows: float = Field(0.0, ge=0)
    counters: float = Field(0.0, ge=0)
    rib: float = Field(0.0, ge=0)
    counters_by_link: dict[str, float] = Field(
        default_factory=dict, description="link id -> age of that link's counter reading"
    )

    @field_validator("counters_by_link")
    @classmethod
    def _ages(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: a for k, a in v.items() if not a >= 0}
        if bad:
            raise ValueError(f"ages must be >= 0 seconds, got {bad}")
        return v


class CycleSpec(_Strict):
    repeat: int = Field(1, ge=1)
    rates: dict[str, Rate | None] | None = None
    demand: dict[str, dict[str, Rate | DemandSpec]] | None = None
    demand_file: str | None = Field(
        None, description="Parquet or CSV: link_id, prefix, rate_bps[, samples]; replaces the demand like `demand`"
    )
    links: dict[str, LinkChange] = Field(default_factory=dict)
    routes_add: dict[str, list[str | RouteSpec]] = Field(default_factory=dict)
    routes_withdraw: dict[str, list[str]] = Field(default_factory=dict)
    policy: dict[str, Any] = Field(default_factory=dict)
    input_age_s: InputAges = Field(default_factory=InputAges)
    """Age of each input at this cycle (a misspelled input is an error, not ignored)."""


class OverrideSpec(_Strict):
    prefix: str
    to_link: str
    from_links: tuple[str, ...] = ()
    age_s: float = Field(0.0, ge=0, description="how long before the first cycle it was added")
    hold_s: float | None = Field(None, ge=0, description="default: the policy's hold")
    valid_for_s: float | None = Field(None, description="valid_until - start; default the TTL")
    split_from: str | None = None


class ScenarioSpec(_Strict):
    pop: str
    start: float = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    policy: dict[str, Any] = Field(default_factory=dict)
    links: list[LinkSpec]
    routes: dict[str, list[str | RouteSpec]] = Field(default_factory=dict)
    routes_file: str | None = Field(
        None,
        description="Parquet or CSV: link_id, prefix[, local_pref, as_path, origin, med, next_hop, own]; "
        "read once, added after `routes`",
    )
    overrides: list[OverrideSpec] = Field(default_factory=list)
    cycles: list[CycleSpec] = Field(min_length=1)


@dataclass(frozen=True)
class CycleInput:
    index: int
    now: float
    snapshot: Snapshot
    policy: Policy


def load(path: Path | str, base_policy: dict[str, Any] | None = None) -> ScenarioSpec:
    path = Path(path)
    try:
        spec = ScenarioSpec.model_validate(read_yaml(path))
    except ValidationError as exc:
        raise ScenarioError(format_validation_error(exc, str(path), "scenario")) from exc
    for c in spec.cycles:
        if c.demand is not None and c.demand_file is not None:
            raise ScenarioError(f"{path}: a cycle entry has both demand and demand_file; give one")
    if base_policy:
        spec = spec.model_copy(update={"policy": {**base_policy, **spec.policy}})
    # Table files are named relative to the scenario file.
    here = path.parent
    return spec.model_copy(
        update={
            "routes_file": None if spec.routes_file is None else str(here / spec.routes_file),
            "cycles": [
                c if c.demand_file is None else c.model_copy(update={"demand_file": str(here / c.demand_file)})
                for c in spec.cycles
            ],
        }
    )


def cycles(spec: ScenarioSpec, count: int | None = None) -> Iterator[CycleInput]:
    """Inputs of each cycle; past the end of the file the last cycle repeats."""
    expanded = [c for c in spec.cycles for _ in range(c.repeat)]
    total = count if count is not None else len(expanded)
    links = {l.id: l for l in spec.links}
    routes = {link: list(entries) for link, entries in spec.routes.items()}
    policy_data = dict(spec.policy)
    rates: dict[str, Rate | None] = {}
    demand: dict[str, dict[str, Rate | DemandSpec]] | tables.DemandColumns = {}
    route_table = None if spec.routes_file is None else tables.read_routes(Path(spec.routes_file))
    demand_tables: dict[str, tables.DemandColumns] = {}
    parsed: dict[str, px.Prefix] = {}  # prefix text -> key, shared by every cycle's builder
    for i in range(total):
        c = expanded[min(i, len(expanded) - 1)]
        first_of_entry = i < len(expanded) and (i == 0 or expanded[i - 1] is not c)
        if first_of_entry:  # changes apply once, when the entry starts
            for link_id, change in c.links.items():
                _known_link(links, link_id, f"cycle {i}: links")
                links[link_id] = links[link_id].model_copy(update=change.model_dump(exclude_none=True))
            for link_id, entries in c.routes_add.items():
                _known_link(links, link_id, f"cycle {i}: routes_add")
                routes.setdefault(link_id, []).extend(entries)
            for link_id, gone in c.routes_withdraw.items():
                routes[link_id] = [r for r in routes.get(link_id, []) if _route(r).prefix not in set(gone)]
            policy_data.update(c.policy)
            if c.rates is not None:
                rates = {**rates, **c.rates}
            if c.demand is not None:
                demand = c.demand
            elif c.demand_file is not None:
                if c.demand_file not in demand_tables:
                    demand_tables[c.demand_file] = tables.read_demand(Path(c.demand_file))
                demand = demand_tables[c.demand_file]
        now = spec.start + i * _policy(policy_data, i).cycle_s
        yield CycleInput(
            i,
            now,
            _snapshot(spec.pop, links, routes, route_table, rates, demand, c.input_age_s, now, i, parsed),
            _policy(policy_data, i),
        )


def initial_state(spec: ScenarioSpec) -> PlannerState:
    policy = _policy(dict(spec.policy), 0)
    overrides = {}
    for o in spec.overrides:
        created = spec.start - o.age_s
        overrides[o.prefix] = Override(
            prefix=o.prefix,
            to_link=o.to_link,
            from_links=o.from_links,
            created_at=created,
            hold_until=created + (o.hold_s if o.hold_s is not None else policy.hold_s),
            valid_until=spec.start + (o.valid_for_s if o.valid_for_s is not None else policy.ttl),
            split_from=o.split_from,
            reason="OVERLOAD",
        )
    return PlannerState(overrides=overrides)


def run(spec: ScenarioSpec, count: int | None = None) -> Iterator[tuple[CycleInput, Plan]]:
    state = initial_state(spec)
    for cycle in cycles(spec, count):
        result = plan(cycle.snapshot, state, cycle.policy, cycle.now)
        state = result.state
        yield cycle, result


def _policy(data: dict[str, Any], i: int) -> Policy:
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(format_validation_error(exc, f"scenario cycle {i}", "policy")) from exc


def _route(entry: str | RouteSpec) -> RouteSpec:
    return RouteSpec(prefix=entry) if isinstance(entry, str) else entry


def _known_link(links: dict[str, LinkSpec], link_id: str, where: str) -> None:
    if link_id not in links:
        raise ScenarioError(f"{where}: unknown link {link_id!r} (links: {sorted(links)})")


def _snapshot(
    pop: str,
    links: dict[str, LinkSpec],
    routes: dict[str, list[str | RouteSpec]],
    route_table: tables.RouteColumns | None,
    rates: dict[str, Rate | None],
    demand: dict[str, dict[str, Rate | DemandSpec]] | tables.DemandColumns,
    ages: InputAges,
    now: float,
    i: int,
    parsed: dict[str, px.Prefix],
) -> Snapshot:
    b = SnapshotBuilder(pop, parsed)
    try:
        for link in links.values():
            rate = rates.get(link.id)
            b.add_link(
                LinkState(
                    link_id=link.id,
                    router=link.router,
                    capacity_bps=bandwidth(link.capacity),
                    rate_bps=None if rate is None else bandwidth(rate),
                    up=link.up,
                    drained=link.drained,
                    peer_type=link.peer_type,
                    peer_asn=link.peer_asn,
                    speed_bps=None if link.speed is None else bandwidth(link.speed),
                    thresholds=Thresholds(**link.thresholds),
                    v6_blackhole=link.v6_blackhole,
                    updated_at=None if link.id not in ages.counters_by_link else now - ages.counters_by_link[link.id],
                )
            )
        for link_id in rates:
            _known_link(links, link_id, f"cycle {i}: rates")
        for link_id in ages.counters_by_link:
            _known_link(links, link_id, f"cycle {i}: input_age_s.counters_by_link")
        for link_id, entries in routes.items():
            for entry in entries:
                r = _route(entry)
                b.add_route(
                    link_id,
                    r.prefix,
                    local_pref=r.local_pref,
                    as_path=r.as_path,
                    origin=r.origin,
                    med=r.med,
                    next_hop=r.next_hop,
                    own=r.own,
                )
        if route_table is not None:
            route_table.add_to(b)
        if isinstance(demand, tables.DemandColumns):
            demand.add_to(b)
        else:
            for link_id, per_prefix in demand.items():
                for prefix, value in per_prefix.items():
                    d = value if isinstance(value, DemandSpec) else DemandSpec(rate=value)
                    b.add_demand(prefix, link_id, bandwidth(d.rate), d.samples)
    except ValueError as exc:  # bandwidth() and Thresholds: say which cycle
        raise ScenarioError(f"scenario cycle {i}: {exc}") from exc
    for name in ("flows", "counters", "rib"):
        b.watermark(name, now - getattr(ages, name))
    return b.build()
