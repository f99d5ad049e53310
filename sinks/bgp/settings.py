"""Settings of ``netpilot injector``: the mode, the safety limits, the BGP sessions."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from netpilot import catalog
from netpilot.rib import RibKind
from netpilot.settings import ComponentSettings

InjectorMode = Literal["observe", "suggest", "apply"]


class RibSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: RibKind = Field(description="bird (birdc) or frr (vtysh)")
    socket: Path = Field(description="birdc control socket, or FRR's vty socket directory")


class RouterSession(BaseModel):
    """How to reach one PoP router (named as in the inventory) for the iBGP session."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    neighbor: str = Field(description="the router's address for the session")
    port: int = Field(179, ge=1, le=65535)
    peer_as: int | None = Field(None, ge=1, le=4294967295, description="default: local_as (iBGP)")
    local_address: str = Field("127.0.0.1", description="netpilot's end of the session")
    rib: RibSettings = Field(description="where the injector reads back what the router installed")

    @field_validator("neighbor", "local_address")
    @classmethod
    def _address(cls, v: str) -> str:
        return str(ipaddress.ip_address(v))


class InjectorSettings(ComponentSettings):
    COMPONENT: ClassVar[str] = "injector"

    mode: InjectorMode = Field(
        "observe",
        description="observe: announce nothing, log what would be; "
        "suggest: announce what a person approved; "
        "apply: announce every valid recommendation",
    )
    local_as: int = Field(64496, ge=1, le=4294967295, description="netpilot's (and the PoP's) AS")
    router_id: str = "127.0.0.1"
    routers: dict[str, RouterSession] = Field(
        default_factory=dict, description="per inventory router name: its iBGP session"
    )
    community: str = Field(
        "64496:666", pattern=r"^\d+:\d+$", description="tags every injected route; the read-back looks for it"
    )
    no_export: bool = Field(True, description="also tag NO_EXPORT: an override never leaves the AS")
    local_pref: int = Field(1000, ge=0, description="above anything the routers learn from peers")
    max_active_per_pop: int = Field(200, ge=0, description="overrides in place per PoP at most")
    max_announces_per_cycle: int = Field(50, ge=1, description="new or changed routes per PoP per cycle_s")
    cycle_s: float = Field(10.0, gt=0, description="the announce rate limit's period")
    max_prefix_len_v4: int = Field(24, ge=1, le=32, description="never inject more specific than this")
    max_prefix_len_v6: int = Field(48, ge=1, le=128)
    allowed_prefixes: tuple[str, ...] = Field((), description="only inside these (empty: any)")
    deny_prefixes: tuple[str, ...] = Field((), description="never inside these")
    reconcile_every_s: float = Field(0.25, gt=0)
    readback_every_s: float = Field(1.0, gt=0)
    confirm_refresh_s: float = Field(
        30.0, gt=0, description="re-publish an unchanged applied record this often (its confirmed_at)"
    )
    catch_up_timeout_s: float = Field(
        30.0, gt=0, description="at start, wait this long at most for the compacted topics before reconciling"
    )
    hold_time_s: int = Field(9, ge=3, le=65535, description="BGP hold time: a frozen injector's routes go within it")
    run_dir: Path = Field(Path(".netpilot/injector"), description="ExaBGP's config, socket and log")
    exabgp_netns: str | None = Field(
        None,
        description="run ExaBGP inside this network namespace (ip netns exec): the routers sit behind it, "
        "as in `netpilot dev lab`; its API relay is a Unix socket, so the injector itself stays where it is",
    )
    group_id: str = Field(
        catalog.consumer_group(catalog.Component.AUTOPILOT_CONSUMER),
        description="consumer group prefix (offsets are never committed)",
    )

    @field_validator("allowed_prefixes", "deny_prefixes")
    @classmethod
    def _prefixes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(str(ipaddress.ip_network(p, strict=False)) for p in v)

    def communities(self) -> tuple[str, ...]:
        return (self.community, "no-export") if self.no_export else (self.community,)
