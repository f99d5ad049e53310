"""Settings of ``netpilot inventory`` (YAML section ``inventory:``, env NETPILOT_INVENTORY__*)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field

from netpilot.settings import ComponentSettings


class InventorySettings(ComponentSettings):
    COMPONENT: ClassVar[str] = "inventory"

    file: Path = Field(Path("inventory.yaml"), description="the inventory YAML to publish")
    watch_interval_s: float = Field(5.0, gt=0, description="how often --watch checks the file")
