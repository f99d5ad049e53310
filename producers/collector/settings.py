"""Collector settings (``collector:`` section, env ``NETPILOT_COLLECTOR__*``)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from netpilot.settings import ComponentSettings
from producers.collector.decode.bounds import FlowBounds

_B = FlowBounds()


class PlausibilitySettings(BaseModel):
    """Bounds a decoded flow must meet to be published (docs/collector.md, "Plausibility")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="refuse (and count) flows outside the bounds below")
    min_bytes_per_packet: int = Field(_B.min_bytes_per_packet, ge=0, description="bytes/packets below: refused")
    max_bytes_per_packet: int = Field(_B.max_bytes_per_packet, ge=1, description="bytes/packets above: refused")
    max_packets_per_flow: int = Field(_B.max_packets_per_flow, ge=1, description="sampled packets in one record")
    max_scaled_bytes: int = Field(_B.max_scaled_bytes, ge=1, le=2**64 - 1, description="bytes x sampling rate")
    max_duration_s: float = Field(_B.max_duration_s, ge=0, description="time_end - time_start")
    max_flow_bps: float = Field(_B.max_flow_bps, gt=0, description="bytes x rate x 8 / max(duration, 1 s)")
    max_future_s: float = Field(_B.max_future_s, ge=0, description="time_end ahead of the receive time")
    max_past_s: float = Field(_B.max_past_s, ge=0, description="time_end behind the receive time")

    @model_validator(mode="after")
    def _ordered(self) -> PlausibilitySettings:
        if self.min_bytes_per_packet > self.max_bytes_per_packet:
            raise ValueError("min_bytes_per_packet must be <= max_bytes_per_packet")
        return self

    def bounds(self) -> FlowBounds | None:
        if not self.enabled:
            return None
        return FlowBounds(**self.model_dump(exclude={"enabled"}))


class CollectorSettings(ComponentSettings):
    COMPONENT: ClassVar[str] = "collector"

    listen_address: str = Field("0.0.0.0", description="address the UDP listeners bind to")
    netflow_port: int = Field(2055, ge=0, le=65535, description="NetFlow v5/v9 + IPFIX; 0 = any free port")
    sflow_port: int = Field(6343, ge=0, le=65535, description="sFlow v5; 0 = any free port")
    receive_buffer_bytes: int = Field(32 << 20, ge=1 << 16, description="SO_RCVBUF per socket")
    queue_datagrams: int = Field(100_000, ge=100, description="bounded receive->decode queue; overflow is counted")
    batch_max_datagrams: int = Field(2_000, ge=1, description="datagrams per decode pass")
    batch_max_ms: int = Field(
        200,
        ge=10,
        description="longest wait before a decode pass + publish: also the received flows a killed "
        "(SIGKILL) collector can lose (docs/collector.md, Stopping)",
    )
    max_flows_per_message: int = Field(10_000, ge=100, description="flows per Kafka message (Arrow IPC batch)")
    inventory_file: Path | None = Field(None, description="YAML: pops -> routers (exporter) -> links")
    routes_file: Path | None = Field(None, description="YAML: routes (prefix, dst_as)")
    demand_prefix_len_v4: int | None = Field(
        None,
        ge=1,
        le=32,
        description="report an IPv4 destination at least this specific (e.g. 24): a flow to a shorter "
        "route gets the /24 inside it as dst_prefix, so the autopilot can split heavy routes on measured "
        "demand; None = the route itself",
    )
    demand_prefix_len_v6: int | None = Field(
        None, ge=1, le=128, description="the same for IPv6 (e.g. 48); None = the route itself"
    )
    allowed_exporters: tuple[str, ...] = Field((), description="exporter addresses accepted besides the inventory's")
    accept_unknown_exporters: bool = Field(False, description="accept every exporter (unbounded metric labels!)")
    default_sampling_rate: int = Field(1, ge=1, description="rate when an exporter states none (flagged)")
    publish_raw_datagrams: bool = Field(False, description="also copy datagrams to the raw topic")
    publish_link_stats: bool = Field(True, description="publish sFlow counter samples as link stats")
    max_templates: int = Field(8192, ge=16)
    max_templates_per_domain: int = Field(1024, ge=1)
    pending_age_ms: int = Field(10_000, ge=0, description="how long data waits for its template")
    template_scope: Literal["session", "exporter"] = Field(
        "session",
        description="templates belong to exporter address + UDP source port (RFC 7011 §8), or to the address only "
        "(exporters that change source port)",
    )
    load_templates: bool = Field(True, description="read the templates topic at start")
    follow_templates: bool = Field(
        True,
        description="keep reading the templates topic while running: templates another collector learned "
        "(one sharing the port, one that died) decode here at once",
    )
    reuse_port: bool = Field(
        True,
        description="SO_REUSEPORT on the UDP sockets: collectors on one host and port share the exporters' "
        "sessions (the kernel hashes each session to one of them; docs/collector.md, Scale-out)",
    )
    plausibility: PlausibilitySettings = Field(
        default_factory=PlausibilitySettings, description="bounds on decoded flows (refused ones are counted)"
    )

    @field_validator("allowed_exporters")
    @classmethod
    def _addresses(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(str(ipaddress.ip_address(a)) for a in v)
