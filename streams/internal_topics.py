"""Create a faust app's internal topics (table changelogs, tick topics) before it starts.

faust declares them itself at start-up, but on KRaft a topic created a moment ago can show
in a client's metadata with no partitions yet; faust then sees "the changelog topic has 0
partitions" and refuses the first table write (seen in CI under load: every flows batch of
the first seconds went to dead letters). Creating them here and waiting until the broker
reports every partition makes the start deterministic.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import faust
from confluent_kafka.admin import AdminClient, NewTopic

from netpilot.errors import KafkaSetupError
from netpilot.settings import KafkaSettings


def internal_topics(app: faust.App, extra: Sequence[Any] = ()) -> list[tuple[str, int, dict[str, str]]]:
    """(name, partitions, config) of every topic the app would declare itself: the table
    changelogs, plus ``extra`` internal topics (e.g. a tick topic agents consume)."""
    out: dict[str, tuple[str, int, dict[str, str]]] = {}
    for table in app.tables.values():
        t = table.changelog_topic
        cfg = {"cleanup.policy": "compact", **{k: str(v) for k, v in (t.config or {}).items()}}
        out[t.get_topic_name()] = (t.get_topic_name(), t.partitions or app.conf.topic_partitions, cfg)
    for t in [*extra, *app.topics]:  # the conductor's topics: agents' channels, if registered
        if getattr(t, "internal", False) and hasattr(t, "get_topic_name"):
            name = t.get_topic_name()
            if name not in out:
                cfg = {k: str(v) for k, v in (t.config or {}).items()}
                if t.retention:
                    cfg.setdefault("retention.ms", str(int(float(t.retention) * 1000)))
                out[name] = (name, t.partitions or app.conf.topic_partitions, cfg)
    return sorted(out.values())


def ensure_internal_topics(
    app: faust.App, kafka: KafkaSettings, replication: int, extra: Sequence[Any] = (), timeout: float = 30.0
) -> list[str]:
    """Create the app's internal topics that are missing and wait until all are usable."""
    wanted = internal_topics(app, extra)
    admin = AdminClient(kafka.client_config())  # type: ignore[arg-type]  # invariant dict in the hint
    existing = admin.list_topics(timeout=10).topics
    new = [
        NewTopic(n, num_partitions=p, replication_factor=replication, config=c)
        for n, p, c in wanted
        if n not in existing
    ]
    for name, fut in admin.create_topics(new, operation_timeout=timeout).items() if new else []:
        try:
            fut.result(timeout=timeout)
        except Exception as exc:  # "already exists" is fine (another worker)
            if "TOPIC_ALREADY_EXISTS" not in str(exc) and "already exists" not in str(exc):
                raise KafkaSetupError(f"creating internal topic {name}: {exc}") from exc
    deadline = time.monotonic() + timeout
    while True:
        md = admin.list_topics(timeout=10).topics
        missing = [
            n
            for n, p, _ in wanted
            if n not in md
            or md[n].error is not None
            or len(md[n].partitions) != p
            or any(part.leader < 0 for part in md[n].partitions.values())
        ]
        if not missing:
            return [n for n, _, _ in wanted]
        if time.monotonic() > deadline:
            raise KafkaSetupError(f"internal topics not ready after {timeout:.0f}s: {missing}")
        time.sleep(0.2)
