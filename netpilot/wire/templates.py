"""exporter-template/1, key ``exporter|observation_domain|template_id``.

The template's raw definition bytes as the exporter sent them (hex), so any collector can
rebuild the same decoder. A tombstone withdraws the template.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from netpilot.wire.json import WireMessage


class ExporterTemplate(WireMessage):
    SCHEMA_NAME = "exporter-template"
    TIME_FIELDS = ("received_at",)
    exporter: str
    observation_domain: int = Field(ge=0)
    template_id: int = Field(ge=256, le=65535)
    version: Literal[9, 10]
    kind: Literal["data", "options"] = "data"
    definition_hex: str
    """The template record exactly as received (without the set header)."""
    scope_field_count: int = Field(default=0, ge=0)
    received_at: float

    def key(self) -> str:
        return f"{self.exporter}|{self.observation_domain}|{self.template_id}"
