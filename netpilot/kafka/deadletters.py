"""Publishing poison messages to the dead-letter topic, with the reason, never dropping them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, cast

import pyarrow as pa
from confluent_kafka import Message

from netpilot import catalog
from netpilot.errors import WireError, WireImplausibleTime, WireSchemaMismatch, WireVersionError
from netpilot.kafka.producer import KafkaProducer
from netpilot.wire.deadletter import DeadLetter
from netpilot.wire.intake import Intake

T = TypeVar("T")


REASONS = ("wire-version", "wire-decode", "schema-mismatch", "implausible-time", "processing")
"""Every value :func:`reason_for` returns (metrics pre-create these label values)."""


def reason_for(exc: BaseException) -> str:
    """Short, bounded machine reason for an exception (used as a metric label too)."""
    if isinstance(exc, WireSchemaMismatch):  # before its base class WireVersionError
        return "schema-mismatch"
    if isinstance(exc, WireVersionError):
        return "wire-version"
    if isinstance(exc, WireImplausibleTime):
        return "implausible-time"
    if isinstance(exc, WireError):
        return "wire-decode"
    return "processing"


class DeadLetterPublisher:
    def __init__(self, producer: KafkaProducer, component: str) -> None:
        self._producer = producer
        self._component = component
        self.topic = producer.kafka.topic(catalog.DEAD_LETTERS)
        self.sent = 0

    def send(self, msg: Message, exc: BaseException | str, reason: str | None = None) -> DeadLetter:
        if isinstance(exc, BaseException):
            reason = reason or reason_for(exc)
            error = f"{type(exc).__name__}: {exc}"
        else:
            reason = reason or "processing"
            error = exc
        dl = DeadLetter(
            source_topic=msg.topic() or "",
            source_partition=msg.partition() or 0,
            source_offset=msg.offset() or 0,
            reason=reason,
            error=error,
            component=self._component,
            value=msg.value(),
            original_headers=tuple((k, v or b"") for k, v in _headers(msg)),
        )
        self._producer.produce(self.topic, dl.value, key=dl.key(), headers=dl.headers())
        self.sent += 1
        return dl


def _headers(msg: Message) -> list[tuple[str, bytes | None]]:
    """A consumed message's headers: a list of (name, bytes | None), never a dict."""
    return cast("list[tuple[str, bytes | None]]", msg.headers() or [])


def decode_or_dead_letter(
    messages: list[Message],
    decode: Callable[[bytes], T],
    dead_letters: DeadLetterPublisher,
    on_dead: Callable[[str], None] | None = None,
    intake: Intake | None = None,
    schema_id: str | None = None,
) -> list[tuple[Message, T]]:
    """Decode each message; send the ones that fail to the dead-letter topic with the reason.

    The poison message is *moved*, not dropped: once its dead letter is queued the caller can
    commit past it. ``on_dead(reason)`` lets the caller count it (metrics label = reason).
    With ``intake`` and the topic's ``schema_id``, the ``schema`` header and the timestamps
    are checked too (:mod:`netpilot.wire.intake`).
    """
    from netpilot.errors import NetpilotError
    from netpilot.wire.json import WireMessage

    if intake is not None and schema_id is None:
        raise TypeError("decode_or_dead_letter with an intake needs the topic's schema_id")
    out: list[tuple[Message, T]] = []
    for m in messages:
        try:
            if intake is not None:
                assert schema_id is not None  # checked above
                intake.check_header(schema_id, _headers(m))
            # a tombstone (None) fails decode with a TypeError: dead-lettered below
            obj = decode(m.value())  # type: ignore[arg-type]
            if intake is not None and isinstance(obj, (WireMessage, pa.Table)):
                intake.check_times(obj, schema_id)
            out.append((m, obj))
        except (NetpilotError, ValueError, TypeError) as exc:
            dl = dead_letters.send(m, exc)
            if on_dead is not None:
                on_dead(dl.reason)
    return out
