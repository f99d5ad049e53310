"""Dead-lettering a poison event from a faust agent: the record with its reason goes to the
dead-letter topic, the metric counts it and the log says so (rate-limited per topic and
reason, so a flood of poison does not flood the log)."""

from __future__ import annotations

from typing import Any

import faust
from prometheus_client import Counter

from netpilot.kafka.deadletters import reason_for
from netpilot.obs.logging import RateLimitedLog
from netpilot.wire.deadletter import DeadLetter


async def send_dead_letter(
    topic: faust.TopicT, event: Any, exc: BaseException, component: str, counter: Counter, rlog: RateLimitedLog
) -> None:
    msg = event.message
    reason = reason_for(exc)
    dl = DeadLetter(
        source_topic=msg.topic,
        source_partition=msg.partition,
        source_offset=msg.offset,
        reason=reason,
        error=f"{type(exc).__name__}: {exc}",
        component=component,
        value=msg.value,
        original_headers=tuple((k, v or b"") for k, v in (msg.headers or [])),
    )
    await topic.send(key=dl.key().encode(), value=dl.value, headers=dl.headers())
    counter.labels(msg.topic, reason).inc()
    rlog.warning(
        f"dlq:{msg.topic}:{reason}",
        "message sent to dead letters",
        topic=msg.topic,
        partition=msg.partition,
        offset=msg.offset,
        reason=reason,
        error=str(exc),
    )
