"""Collector settings (``collector:`` section, env ``NETPILOT_COLLECTOR__*``)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from netpilot.settings import ComponentSettings


class CollectorSettings(ComponentSettings):
    COMPONENT: ClassVar[str] = "collector"

    listen_address: str = Field("0.0.0.0", description="address the UDP listeners bind to")
    netflow_port: int = Field(2055, ge=0, le=65535, description="NetFlow v5/v9 + IPFIX; 0 = any free port")
    sflow_port: int = Field(6343, ge=0, le=65535, description="sFlow v5; 0 = any free port")
    receive_buffer_bytes: int = Field(32 << 20, ge=1 << 16, description="SO_RCVBUF per socket")
    queue_datagrams: int = Field(100_000, ge=100, description="bounded receive->decode queue; overflow is counted")
    batch_max_datagrams: int = Field(2_000, ge=1, description="datagrams per decode pass")
    batch_max_ms: int = Field(500, ge=10, description="longest wait before a decode pass + publish")
    max_flows_per_message: int = Field(10_000, ge=100, description="flows per Kafka message (Arrow IPC batch)")
    inventory_file: Path | None = Field(None, description="YAML: pops -> routers (exporter) -> links")
    routes_file: Path | None = Field(None, description="YAML: routes (prefix, dst_as)")
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

    @field_validator("allowed_exporters")
    @classmethod
    def _addresses(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(str(ipaddress.ip_address(a)) for a in v)
