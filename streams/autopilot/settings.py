"""Settings of the autopilot component: the planner policy (YAML ``autopilot.policy``)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field

from netpilot.settings import ComponentSettings
from streams.autopilot.policy import Policy
from streams.membership import GroupInstanceId

TAKEOVER_RESTORE_S = 5.0
"""Rebalance plus table restore after the session timeout, with some margin (measured 1-3 s)."""


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

    def takeover_warning(self) -> str | None:
        """Why a PoP could lose more than one cycle when its worker dies for good, or None.

        A dead worker's PoPs wait ``session_timeout_s`` before another worker is given them,
        then a few seconds of table restore (11-13 s in all with the defaults, measured in
        docs/recovery.md): with cycles not longer than that, such a PoP misses two or more.
        A worker restarted under its ``group_instance_id`` is not concerned (no rebalance).
        """
        takeover_s = self.session_timeout_s + TAKEOVER_RESTORE_S
        if self.policy.cycle_s >= takeover_s:
            return None
        return (
            f"cycle {self.policy.cycle_s:g}s is shorter than a takeover (session_timeout_s "
            f"{self.session_timeout_s:g}s + ~{TAKEOVER_RESTORE_S:g}s restore): a worker that dies and is not "
            "restarted costs its PoPs more than one cycle"
        )
