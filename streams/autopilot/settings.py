"""Settings of the autopilot component: the planner policy (YAML ``autopilot.policy``)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field

from netpilot.settings import ComponentSettings
from streams.autopilot.policy import Policy
from streams.membership import GroupInstanceId


class AutopilotSettings(ComponentSettings):
    """``autopilot:`` section; env ``NETPILOT_AUTOPILOT__POLICY__HOLD_S=600`` and so on."""

    COMPONENT: ClassVar[str] = "autopilot"

    policy: Policy = Field(default_factory=Policy, description="planner thresholds, timers, budgets")
    # -- the worker (`netpilot autopilot run`) --------------------------------------------
    app_id: str = Field(
        "netpilot-autopilot",
        pattern=r"^[A-Za-z0-9._-]+$",
        description="faust app id = consumer group; prefixes its internal topics",
    )
    demand_window_s: float = Field(120.0, gt=0, description="prefix demand = bytes over this window (EF: 2 min)")
    demand_granularity_s: int = Field(10, gt=0, description="flow-aggregates window size used as demand")
    store: str = Field("memory://", description="faust table store (memory://, or rocksdb://)")
    data_dir: Path = Field(Path(".netpilot/autopilot"), description="faust data directory")
    changelog_replication: int = Field(1, ge=1, description="replication factor of faust's changelog topics")
    session_timeout_s: float = Field(
        10.0, ge=6, le=300, description="how long the group waits for a silent (dead) worker"
    )
    group_instance_id: GroupInstanceId = ""
    unhealthy_after_cycles: int = Field(
        3,
        ge=1,
        description="health fails after this many failed cycles of a PoP in a row, or as many periods without a cycle",
    )
