"""Wire schemas: one module per message family; every topic's value schema is here.

``SCHEMAS`` maps the catalog's ``value_schema`` ids to the module or model that encodes
and decodes them, so a test can check the catalog names only schemas that exist.
"""

from __future__ import annotations

from netpilot.wire import aggregates, deadletter, flows
from netpilot.wire.autopilot import CycleSummary, Recommendation
from netpilot.wire.injector import AppliedOverride, InjectorControl
from netpilot.wire.links import LinkInventory, LinkStats, LinkUtilisation
from netpilot.wire.routes import Route
from netpilot.wire.templates import ExporterTemplate

RAW_DATAGRAM_SCHEMA_ID = "raw-datagram/1"
"""raw-datagram/1: the UDP payload as received; key: the exporter address (text); headers
``schema``, ``received-ms`` (Unix ms, text) and ``source-port`` (the exporter's UDP port,
text; since collector 1.1)."""

SCHEMAS: dict[str, object] = {
    flows.SCHEMA_ID: flows,
    aggregates.SCHEMA_ID: aggregates,
    deadletter.SCHEMA_ID: deadletter,
    RAW_DATAGRAM_SCHEMA_ID: None,
    LinkInventory.schema_id(): LinkInventory,
    LinkStats.schema_id(): LinkStats,
    LinkUtilisation.schema_id(): LinkUtilisation,
    Route.schema_id(): Route,
    ExporterTemplate.schema_id(): ExporterTemplate,
    Recommendation.schema_id(): Recommendation,
    CycleSummary.schema_id(): CycleSummary,
    AppliedOverride.schema_id(): AppliedOverride,
    InjectorControl.schema_id(): InjectorControl,
}
