"""The grafana-clickhouse-datasource query, as a dataquery variant of grafana-foundation-sdk.

The SDK generates typed queries for Grafana's core data sources (Prometheus, Loki ...) but
not for plugins such as ClickHouse. Its answer for those is the ``Dataquery`` variant: any
class deriving from ``cog.variants.Dataquery`` with ``to_json``/``from_json`` can sit in a
panel's targets, and ``register()`` tells the SDK's runtime to read targets whose datasource
type is the plugin's back as this class (unregistered ones come back as ``UnknownDataquery``,
an untyped dict). The fields are the plugin's v4 SQL-editor query model (``CHSqlQuery`` in
its src/types/sql.ts); only the ones the dashboards set are modelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.common import DataSourceRef

PLUGIN_TYPE = "grafana-clickhouse-datasource"
PLUGIN_VERSION = "4.10.1"
"""The plugin release these queries were written against (stored in each query, as the
plugin's editor does, so a later release can migrate them)."""


class QueryType(Enum):
    TABLE = "table"
    TIME_SERIES = "timeSeries"


class Format(Enum):
    """The plugin's result format (its ``Format`` enum)."""

    TIME_SERIES = 0
    TABLE = 1


_FORMAT_FOR = {QueryType.TABLE: Format.TABLE, QueryType.TIME_SERIES: Format.TIME_SERIES}


@dataclass
class ClickHouseQuery(cogvariants.Dataquery):
    """One SQL-editor query of the ClickHouse plugin."""

    ref_id: str
    raw_sql: str
    query_type: QueryType
    datasource: DataSourceRef | None = None
    plugin_version: str = PLUGIN_VERSION

    @property
    def format(self) -> Format:
        return _FORMAT_FOR[self.query_type]

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "refId": self.ref_id,
            "editorType": "sql",
            "queryType": self.query_type.value,
            "format": self.format.value,
            "rawSql": self.raw_sql,
            "pluginVersion": self.plugin_version,
        }
        if self.datasource is not None:
            out["datasource"] = self.datasource.to_json()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        if data.get("editorType", "sql") != "sql":
            raise ValueError(f"query {data.get('refId')}: only SQL-editor ClickHouse queries are modelled")
        query_type = QueryType(data["queryType"])
        if data.get("format", _FORMAT_FOR[query_type].value) != _FORMAT_FOR[query_type].value:
            raise ValueError(f"query {data.get('refId')}: format {data['format']} does not match {query_type}")
        return cls(
            ref_id=data["refId"],
            raw_sql=data["rawSql"],
            query_type=query_type,
            datasource=DataSourceRef.from_json(data["datasource"]) if "datasource" in data else None,
            plugin_version=data.get("pluginVersion", PLUGIN_VERSION),
        )


class Dataquery(cogbuilder.Builder[cogvariants.Dataquery]):
    """Builder in the SDK's style: ``Dataquery().sql(...).time_series().ref_id("A")``."""

    def __init__(self) -> None:
        self._internal = ClickHouseQuery(ref_id="A", raw_sql="", query_type=QueryType.TABLE)

    def build(self) -> ClickHouseQuery:
        if not self._internal.raw_sql.strip():
            raise ValueError("a ClickHouse query needs its SQL")
        return self._internal

    def sql(self, raw_sql: str) -> Self:
        self._internal.raw_sql = raw_sql
        return self

    def time_series(self) -> Self:
        """Long rows (time, label, value) that Grafana turns into one series per label."""
        self._internal.query_type = QueryType.TIME_SERIES
        return self

    def table(self) -> Self:
        self._internal.query_type = QueryType.TABLE
        return self

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self

    def datasource(self, ref: DataSourceRef) -> Self:
        self._internal.datasource = ref
        return self


def register() -> None:
    """Let the SDK's readers (``Dashboard.from_json`` ...) return ClickHouse targets typed."""
    cogruntime.register_dataquery_variant(cogruntime.DataqueryConfig(PLUGIN_TYPE, ClickHouseQuery.from_json))
