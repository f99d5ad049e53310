"""What every consumer checks when it decodes a message, beyond the body's own schema.

1. **The ``schema`` header** must name the topic's schema and major (``flows/1``,
   ``flows/1.2``: minors only add, so any minor of the major passes). A body that decodes
   under a header saying ``flows/9`` is not trusted: it raises :class:`WireSchemaMismatch`.
   A message without the header (a tombstone, or a producer older than the header) is
   judged by its body alone, which carries its own schema id.
2. **Timestamps** are checked against the consumer's clock at decode time: a message dated
   more than ``wire.max_future_s`` ahead, older than its topic can hold (time-series topics
   only), or with a deadline beyond ``wire.max_horizon_s`` raises
   :class:`WireImplausibleTime`. Why: a single reading dated ten years ahead stays "the
   newest" for the rest of the run and hides every real one after it.

Both errors are :class:`~netpilot.errors.WireError`: the consumer dead-letters the message
(reasons ``schema-mismatch`` and ``implausible-time``, see
:func:`netpilot.kafka.deadletters.reason_for`) and goes on. Pure: no Kafka import; the
clock is injected.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from netpilot.errors import WireImplausibleTime, WireSchemaMismatch
from netpilot.settings import WireSettings
from netpilot.wire import aggregates, flows
from netpilot.wire.json import WireMessage

M = TypeVar("M", bound=WireMessage)

HeaderValue = bytes | str | None
Headers = Sequence[tuple[str, HeaderValue]] | Mapping[str, HeaderValue] | None
"""Kafka headers as confluent-kafka (a list of pairs) or faust/aiokafka (pairs or a mapping)
hand them over."""


def header(headers: Headers, name: str) -> str | None:
    """The last value of header ``name`` as text (None when absent)."""
    if not headers:
        return None
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    found: HeaderValue = None
    for k, v in pairs:
        if k == name:
            found = v
    if found is None:
        return None
    return found.decode(errors="replace") if isinstance(found, (bytes, bytearray)) else str(found)


class Intake:
    """The header and time checks with one consumer's limits and clock.

    ``model``, ``flows`` and ``aggregates`` decode and check in one call; ``check_header`` and
    ``check_times`` are the two halves for a consumer with its own decoder."""

    def __init__(self, settings: WireSettings | None = None, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings if settings is not None else WireSettings()
        self.clock = clock
        self._limits: dict[str, tuple[float, float | None]] = {}

    # -- the two checks -------------------------------------------------------------------
    def check_header(self, schema_id: str, headers: Headers) -> None:
        """Raise :class:`WireSchemaMismatch` unless the ``schema`` header (when present) names
        ``schema_id``'s schema and major."""
        value = header(headers, "schema")
        if value is None:
            return
        name, _, version = value.partition("/")
        want_name, _, want_major = schema_id.partition("/")
        if name != want_name or version.split(".", 1)[0] != want_major:
            raise WireSchemaMismatch(
                f"schema header {value!r} on a topic of {schema_id}: the body is not trusted "
                f"(a {want_name} reader takes {want_name}/{want_major}[.minor] only)"
            )

    def check_times(self, decoded: WireMessage | pa.Table, schema_id: str | None = None) -> None:
        """Raise :class:`WireImplausibleTime` when a timestamp of a decoded message (a wire
        model, or a flows/1 or flow-aggregates/1 table: give ``schema_id`` then) is implausible."""
        now = self.clock()
        if isinstance(decoded, WireMessage):
            self._check_model(decoded, now)
        else:
            if schema_id is None:
                raise TypeError("check_times of an Arrow table needs its schema_id")
            columns = {flows.SCHEMA_ID: flows.TIME_COLUMNS, aggregates.SCHEMA_ID: aggregates.TIME_COLUMNS}[schema_id]
            self._check_table(decoded, schema_id, columns, now)

    # -- decode and check -------------------------------------------------------------------
    def model(self, cls: type[M], value: bytes | memoryview | None, headers: Headers) -> M:
        """Decode one JSON wire message and check it; raises :class:`~netpilot.errors.WireError`."""
        self.check_header(cls.schema_id(), headers)
        msg = cls.decode(value)
        self._check_model(msg, self.clock())
        return msg

    def flows(self, value: bytes | memoryview | pa.Buffer, headers: Headers) -> pa.Table:
        """Decode one flows/1 message and check it."""
        self.check_header(flows.SCHEMA_ID, headers)
        table = flows.decode_flows(value)
        self._check_table(table, flows.SCHEMA_ID, flows.TIME_COLUMNS, self.clock())
        return table

    def aggregates(self, value: bytes, headers: Headers) -> pa.Table:
        """Decode one flow-aggregates/1 message and check it."""
        self.check_header(aggregates.SCHEMA_ID, headers)
        table = aggregates.decode_aggregates(value)
        self._check_table(table, aggregates.SCHEMA_ID, aggregates.TIME_COLUMNS, self.clock())
        return table

    # -- internals ------------------------------------------------------------------------
    def limits(self, schema_id: str) -> tuple[float, float | None]:
        """(max_future_s, max_age_s or None) of a schema id, resolved once."""
        lim = self._limits.get(schema_id)
        if lim is None:
            lim = self._limits[schema_id] = self.settings.limits(schema_id.split("/", 1)[0])
        return lim

    def _check_model(self, msg: WireMessage, now: float) -> None:
        schema_id = msg.schema_id()
        future, age = self.limits(schema_id)
        for name in msg.TIME_FIELDS:
            v = getattr(msg, name)
            if v is not None:
                self._check_value(schema_id, name, float(v), now, future, age)
        horizon = self.settings.max_horizon_s
        for name in msg.DEADLINE_FIELDS:
            v = getattr(msg, name)
            if v is not None and not float(v) <= now + horizon:  # written so that NaN fails too
                raise WireImplausibleTime(
                    f"{schema_id} {name}={v!r} is {_ahead(float(v), now)} this consumer's clock "
                    f"(at most {horizon:.0f} s: wire.max_horizon_s)"
                )

    def _check_table(self, table: pa.Table, schema_id: str, columns: Sequence[str], now: float) -> None:
        if not table.num_rows:
            return
        future, age = self.limits(schema_id)
        for name in columns:
            col = table.column(name)
            mm = pc.min_max(col)  # one vectorised pass (~15 us for 10k rows)
            lo, hi = mm["min"], mm["max"]
            if not lo.is_valid or not hi.is_valid:
                continue
            if pa.types.is_timestamp(col.type):
                scale = _PER_SECOND[col.type.unit]
                lo_s, hi_s = lo.value / scale, hi.value / scale
            else:
                lo_s, hi_s = float(lo.as_py()), float(hi.as_py())
            self._check_value(schema_id, f"max({name})", hi_s, now, future, age)
            self._check_value(schema_id, f"min({name})", lo_s, now, future, age)

    @staticmethod
    def _check_value(schema_id: str, name: str, v: float, now: float, future: float, age: float | None) -> None:
        if not v <= now + future:  # written so that NaN fails too
            raise WireImplausibleTime(
                f"{schema_id} {name}={v!r} is {_ahead(v, now)} this consumer's clock "
                f"(at most {future:.0f} s ahead: wire.max_future_s)"
            )
        if age is not None and not v >= now - age:
            raise WireImplausibleTime(
                f"{schema_id} {name}={v!r} is {now - v:.0f} s older than this consumer's clock "
                f"(at most {age:.0f} s for this topic: wire.max_age_s)"
            )


_PER_SECOND = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}


def _ahead(v: float, now: float) -> str:
    return "not a time, for" if math.isnan(v) else f"{v - now:.0f} s ahead of"
