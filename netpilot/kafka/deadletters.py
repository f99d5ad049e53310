"""Publishing poison messages to the dead-letter topic, with the reason, never dropping them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, cast

from confluent_kafka import Message

from netpilot import catalog
from netpilot.errors import WireVersionError
from netpilot.kafka.producer import KafkaProducer
from netpilot.wire.deadletter import DeadLetter

T = TypeVar("T")


REASONS = ("wire-version", "wire-decode", "processing")
"""Every value :func:`reason_for` returns (metrics pre-create these label values)."""


def reason_for(exc: BaseException) -> str:
    """Short, bounded machine reason for an exception (used as a metric label too)."""
    if isinstance(exc, WireVersionError):
        return "wire-version"
    from netpilot.errors import WireError

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
) -> list[tuple[Message, T]]:
    """Decode each message; send the ones that fail to the dead-letter topic with the reason.

    The poison message is *moved*, not dropped: once its dead letter is queued the caller can
    commit past it. ``on_dead(reason)`` lets the caller count it (metrics label = reason).
    """
    from netpilot.errors import NetpilotError

    out: list[tuple[Message, T]] = []
    for m in messages:
        try:
            # a tombstone (None) fails decode with a TypeError: dead-lettered below
            out.append((m, decode(m.value())))  # type: ignore[arg-type]
        except (NetpilotError, ValueError, TypeError) as exc:
            dl = dead_letters.send(m, exc)
            if on_dead is not None:
                on_dead(dl.reason)
    return out
