"""exporter-template/1, key ``exporter|observation_domain|template_id[|source_port]``.

The template's raw definition bytes as the exporter sent them (hex), so any collector can
rebuild the same decoder. A tombstone withdraws the template.

``source_port`` (an optional field added within /1; older readers ignore it): the
exporter's UDP source port, when templates are scoped by Transport Session (RFC 7011 §8;
the collector's default). It is appended to the key, so two export processes behind one
address keep their templates apart on the compacted topic too; 0 (templates scoped by
exporter address, or written before the field existed) keeps the three-part key.
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
    source_port: int = Field(default=0, ge=0, le=65535)

    def key(self) -> str:
        return template_key(self.exporter, self.observation_domain, self.template_id, self.source_port)


def template_key(exporter: str, observation_domain: int, template_id: int, source_port: int = 0) -> str:
    """The Kafka key of a template (and of the tombstone that withdraws it)."""
    key = f"{exporter}|{observation_domain}|{template_id}"
    return f"{key}|{source_port}" if source_port else key
