"""Settings of ``netpilot routes load`` (YAML section ``routes:``; only kafka: is used today)."""

from __future__ import annotations

from typing import ClassVar

from netpilot.settings import ComponentSettings


class RoutesSettings(ComponentSettings):
    COMPONENT: ClassVar[str] = "routes"
