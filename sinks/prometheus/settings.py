"""Settings of ``netpilot sink prometheus``."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from netpilot import catalog
from netpilot.settings import ComponentSettings


class PrometheusSinkSettings(ComponentSettings):
    COMPONENT: ClassVar[str] = "sink-prometheus"

    group_id: str = Field(
        catalog.consumer_group(catalog.Component.SINK_PROMETHEUS),
        description="Kafka consumer group (offsets are never committed)",
    )
    stale_after_s: float = Field(
        900.0, gt=0, description="stop exporting a link's rates after this long without a utilisation message"
    )
    poll_max_messages: int = Field(1000, ge=1)
