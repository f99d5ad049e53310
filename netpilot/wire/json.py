"""Versioned JSON messages for the low-volume topics (inventory, routes, stats, autopilot).

Every value is a JSON object whose ``schema`` field is ``<name>/<major>``; the Kafka header
``schema`` repeats it. Readers accept their major and ignore fields they do not know (a
minor version only adds optional fields), so producers can be upgraded first.
"""

from __future__ import annotations

from typing import ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from netpilot.errors import WireError, WireVersionError


class WireMessage(BaseModel):
    """Base class of every JSON wire message. Subclasses set ``SCHEMA_NAME``/``MAJOR``."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    SCHEMA_NAME: ClassVar[str] = ""
    MAJOR: ClassVar[int] = 1
    TIME_FIELDS: ClassVar[tuple[str, ...]] = ()
    """Fields saying when something happened (unix seconds): a consumer refuses a message
    whose value is ahead of its clock, or older than its topic can hold
    (:class:`netpilot.wire.intake.Intake`)."""
    DEADLINE_FIELDS: ClassVar[tuple[str, ...]] = ()
    """Fields setting a deadline (unix seconds): in the future, but not beyond the horizon."""

    @model_validator(mode="before")
    @classmethod
    def _drop_schema(cls, data: object) -> object:
        # ``schema`` is checked by decode(); it is not a field of the model.
        if isinstance(data, dict) and "schema" in data:
            data = {k: v for k, v in data.items() if k != "schema"}
        return data

    @classmethod
    def schema_id(cls) -> str:
        return f"{cls.SCHEMA_NAME}/{cls.MAJOR}"

    @classmethod
    def headers(cls) -> list[tuple[str, bytes]]:
        return [("schema", cls.schema_id().encode()), ("content-type", b"application/json")]

    def encode(self) -> bytes:
        body = self.model_dump(mode="json", by_alias=True)
        return _dumps({"schema": self.schema_id(), **body})

    @classmethod
    def decode(cls, value: bytes | memoryview | None) -> Self:
        if value is None:
            raise WireError(f"{cls.SCHEMA_NAME}: empty value (tombstone) where a message was expected")
        try:
            obj = _loads(bytes(value))
        except ValueError as exc:
            raise WireError(f"{cls.SCHEMA_NAME}: value is not JSON: {exc}") from exc
        if not isinstance(obj, dict):
            raise WireError(f"{cls.SCHEMA_NAME}: value is a JSON {type(obj).__name__}, not an object")
        schema = obj.get("schema")
        if not isinstance(schema, str) or "/" not in schema:
            raise WireVersionError(f"{cls.SCHEMA_NAME}: missing or malformed 'schema' field: {schema!r}")
        name, _, major = schema.partition("/")
        if name != cls.SCHEMA_NAME:
            raise WireVersionError(f"expected schema {cls.SCHEMA_NAME!r}, got {name!r}")
        if major.split(".")[0] != str(cls.MAJOR):
            raise WireVersionError(
                f"{cls.SCHEMA_NAME} version {major!r} is not readable by this netpilot "
                f"(reads {cls.MAJOR}); upgrade the consumer"
            )
        try:
            return cls.model_validate(obj)
        except ValidationError as exc:
            raise WireError(f"{cls.SCHEMA_NAME}: invalid message: {exc}") from exc


def _dumps(obj: object) -> bytes:
    import json

    return json.dumps(obj, separators=(",", ":"), sort_keys=False).encode()


def _loads(raw: bytes) -> object:
    import json

    return json.loads(raw)
