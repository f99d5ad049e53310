"""Settings of the streams worker (``streams:`` section, ``NETPILOT_STREAMS__*``)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from netpilot.settings import ComponentSettings
from streams.membership import GroupInstanceId


class StreamsSettings(ComponentSettings):
    COMPONENT: ClassVar[str] = "streams"

    app_id: str = Field(
        "netpilot-streams",
        pattern=r"^[A-Za-z0-9._-]+$",
        description="faust app id = consumer group; prefixes its internal topics",
    )
    window_sizes_s: tuple[int, ...] = Field((10, 60), min_length=1, description="tumbling window lengths, seconds")
    allowed_lateness_s: float = Field(10.0, ge=0, description="how long a window waits for late flows")
    max_future_s: float = Field(
        60.0, gt=0, description="flows stamped further ahead of their receive time (or the clock) are dropped"
    )
    event_time: Literal["time_end", "time_start", "time_received"] = "time_end"
    spread_flows: bool = Field(
        True,
        description=(
            "share a flow record's bytes among the windows its [time_start, time_end] overlaps "
            "(event_time time_end only); false: the whole record in the window of its end"
        ),
    )
    max_counter_wait_s: float = Field(120.0, ge=0, description="event time to wait for counters of a window")
    min_counter_overlap: float = Field(0.5, gt=0, le=1, description="share of a window counters must cover")
    counter_history_s: float = Field(900.0, gt=0, description="counter readings kept per link")
    unknown_link_wait_s: float = Field(
        3600.0, ge=0, description="event time a window waits for its link to appear in the inventory"
    )
    idle_after_s: float = Field(
        30.0,
        gt=0,
        description=(
            "wall-clock seconds without flows from a PoP after which its windows close anyway and "
            "its links' utilisation comes from counters alone (flow_bps 0, coverage 0)"
        ),
    )
    idle_check_s: float = Field(5.0, gt=0, description="how often idle PoPs are looked for")
    store: str = Field("memory://", description="faust table store (memory://, or rocksdb:// with rocksdict)")
    data_dir: Path = Field(Path(".netpilot/streams"), description="faust data directory (table stores)")
    changelog_replication: int = Field(1, ge=1, description="replication factor of faust's changelog topics")
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    session_timeout_s: float = Field(
        10.0, ge=6, le=300, description="how long the group waits for a silent (dead) worker"
    )
    group_instance_id: GroupInstanceId = ""
    producer_max_request_size: int = Field(
        8 * 1024 * 1024, ge=1024 * 1024, description="aggregate batches and changelog blobs can exceed 1 MiB"
    )

    @field_validator("window_sizes_s")
    @classmethod
    def _distinct_positive(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(s <= 0 for s in v) or len(set(v)) != len(v):
            raise ValueError(f"window sizes must be distinct positive seconds, got {list(v)}")
        return tuple(sorted(v))
