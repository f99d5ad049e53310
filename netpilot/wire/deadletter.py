"""dead-letter/1: the original value, unchanged, with the reason in headers.

Headers: ``schema`` = ``dead-letter/1``, ``dlq.reason`` (short machine reason, e.g.
``wire-version``), ``dlq.error`` (human message), ``dlq.source.topic``,
``dlq.source.partition``, ``dlq.source.offset``, ``dlq.component``, plus the original
headers prefixed ``orig.``. Key: ``topic|partition|offset`` of the original.
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEMA_ID = "dead-letter/1"


@dataclass(frozen=True)
class DeadLetter:
    source_topic: str
    source_partition: int
    source_offset: int
    reason: str
    error: str
    component: str
    value: bytes | None
    original_headers: tuple[tuple[str, bytes], ...] = ()

    def key(self) -> str:
        return f"{self.source_topic}|{self.source_partition}|{self.source_offset}"

    def headers(self) -> list[tuple[str, bytes]]:
        hs = [
            ("schema", SCHEMA_ID.encode()),
            ("dlq.reason", self.reason.encode()),
            ("dlq.error", self.error.encode()[:4096]),
            ("dlq.source.topic", self.source_topic.encode()),
            ("dlq.source.partition", str(self.source_partition).encode()),
            ("dlq.source.offset", str(self.source_offset).encode()),
            ("dlq.component", self.component.encode()),
        ]
        hs.extend((f"orig.{k}", v) for k, v in self.original_headers)
        return hs

    @classmethod
    def from_headers(
        cls, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]] | None
    ) -> DeadLetter:
        h = {k: v for k, v in (headers or [])}
        return cls(
            source_topic=h.get("dlq.source.topic", b"").decode(),
            source_partition=int(h.get("dlq.source.partition", b"-1")),
            source_offset=int(h.get("dlq.source.offset", b"-1")),
            reason=h.get("dlq.reason", b"").decode(),
            error=h.get("dlq.error", b"").decode(errors="replace"),
            component=h.get("dlq.component", b"").decode(),
            value=value,
            original_headers=tuple((k[5:], v) for k, v in (headers or []) if k.startswith("orig.")),
        )
