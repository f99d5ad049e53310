"""The simulator's scenario file: topology, demand and scripted events (YAML, validated).

Example: ``examples/simulator/demo.yaml``. Everything is deterministic from ``seed``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from netpilot.errors import ConfigError
from netpilot.settings import format_validation_error, read_yaml

Protocol = Literal["netflow9", "ipfix", "sflow5"]
PeerType = Literal["transit", "pni", "ix"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SimLink(_Strict):
    link_id: str
    if_index: int = Field(ge=1, le=2**31 - 1)
    capacity_bps: float = Field(gt=0)
    peer_type: PeerType = "transit"
    peer_asn: int = Field(64500, ge=1, le=4294967295)
    preference: float = Field(1.0, gt=0, description="share of the PoP's prefixes that prefer this link (relative)")
    reach: float = Field(1.0, ge=0, le=1, description="fraction of prefixes this link has a route for")


class SimRouter(_Strict):
    name: str
    exporter: str = Field("127.0.0.1", description="source address of its datagrams (any 127.0.0.0/8 address)")
    protocol: Protocol = "ipfix"
    sampling_rate: int = Field(1, ge=1, le=2**31 - 1)
    observation_domain: int = Field(0, ge=0)
    links: tuple[SimLink, ...]


class SimPop(_Strict):
    name: str
    routers: tuple[SimRouter, ...]
    peak_bps: float = Field(gt=0, description="PoP egress demand at the diurnal peak")


class Prefixes(_Strict):
    ipv4: int = Field(200, ge=1, le=512, description="/24s drawn from 198.18.0.0/15 (benchmarking range)")
    ipv6: int = Field(50, ge=0, le=65536, description="/48s drawn from 2001:db8::/32")
    zipf_s: float = Field(1.1, gt=0, description="demand ~ 1/rank^s")


class Event(_Strict):
    kind: Literal["surge", "link_down", "route_withdraw"]
    at_s: float = Field(ge=0)
    until_s: float | None = Field(None, ge=0)
    link_id: str
    factor: float = Field(1.5, gt=0, description="surge: demand multiplier on the link's native prefixes")
    share: float = Field(0.5, gt=0, le=1, description="route_withdraw: share of the link's routes withdrawn")


class Scenario(_Strict):
    seed: int = 1
    step_s: float = Field(1.0, gt=0, le=60, description="ground-truth granularity and send period")
    duration_s: float = Field(120, gt=0)
    flows_per_s: int = Field(2000, ge=1, description="flow records (or sFlow samples) per second, all exporters")
    diurnal_amplitude: float = Field(0.2, ge=0, lt=1)
    diurnal_period_s: float = Field(600, gt=0)
    stats_interval_s: float = Field(10, gt=0, description="link counters are published this often")
    prefixes: Prefixes = Prefixes()
    pops: tuple[SimPop, ...]
    events: tuple[Event, ...] = ()

    @model_validator(mode="after")
    def _check_references(self) -> Scenario:
        link_ids = [l.link_id for p in self.pops for r in p.routers for l in r.links]
        dup = {x for x in link_ids if link_ids.count(x) > 1}
        if dup:
            raise ValueError(f"link ids must be unique: {sorted(dup)}")
        for p in self.pops:
            if sum(len(r.links) for r in p.routers) == 0:
                raise ValueError(f"pop {p.name} has no links")
        for e in self.events:
            if e.link_id not in link_ids:
                raise ValueError(f"event {e.kind} at {e.at_s}s names unknown link {e.link_id!r}")
        return self

    def links(self) -> list[tuple[SimPop, SimRouter, SimLink]]:
        return [(p, r, l) for p in self.pops for r in p.routers for l in r.links]


def load_scenario(path: Path | str) -> Scenario:
    data = read_yaml(Path(path))
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(path), "simulator scenario")) from exc
