"""Reconciling the broker's topics with the catalog (``netpilot topics sync|diff``).

Idempotent: a second run changes nothing. Creates missing topics, raises partition counts,
sets drifted configs (incremental alter, only the keys the catalog manages) and reports
what it cannot fix (fewer partitions wanted than exist; another replication factor).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewPartitions, NewTopic

from netpilot.catalog import ALL_TOPICS, Topic
from netpilot.errors import KafkaSetupError
from netpilot.settings import KafkaSettings


@dataclass
class TopicDiff:
    name: str
    missing: bool = False
    partitions: tuple[int, int] | None = None
    """(actual, wanted) when they differ."""
    replication: tuple[int, int] | None = None
    configs: dict[str, tuple[str | None, str]] = field(default_factory=dict)
    """key -> (actual, wanted) for drifted configs."""

    @property
    def in_sync(self) -> bool:
        return not (self.missing or self.partitions or self.replication or self.configs)

    def describe(self) -> str:
        if self.missing:
            return f"{self.name}: missing"
        parts = []
        if self.partitions:
            parts.append(f"partitions {self.partitions[0]} -> {self.partitions[1]}")
        if self.replication:
            parts.append(
                f"replication {self.replication[0]} (wanted {self.replication[1]}, "
                "not changed automatically: use a reassignment)"
            )
        for k, (a, w) in sorted(self.configs.items()):
            parts.append(f"{k} {a!r} -> {w!r}")
        return f"{self.name}: " + ("in sync" if not parts else "; ".join(parts))


@dataclass
class SyncReport:
    created: list[str] = field(default_factory=list)
    repartitioned: list[str] = field(default_factory=list)
    reconfigured: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)
    """Differences sync cannot repair; each line says why."""
    diffs: list[TopicDiff] = field(default_factory=list)


class TopicAdmin:
    def __init__(self, kafka: KafkaSettings, timeout: float = 30.0, min_replicas: int = 1) -> None:
        """``min_replicas``: the replication factor a topic gets at least. The catalog's
        ``replication`` is the one-broker development figure (1); a cluster wants 3, as
        strimzi/render.py gives its KafkaTopics (``topics.min_replicas`` in the config)."""
        self.kafka = kafka
        self.timeout = timeout
        self.min_replicas = min_replicas
        # confluent-kafka's hint wants dict[str, str | int | float | bool]; dict is invariant
        self.client = AdminClient(kafka.client_config())  # type: ignore[arg-type]

    def _wanted(self, topics: Iterable[Topic]) -> dict[str, Topic]:
        return {self.kafka.topic(t): t for t in topics}

    def replication(self, topic: Topic) -> int:
        return max(topic.replication, self.min_replicas)

    def diff(self, topics: Iterable[Topic] = ALL_TOPICS) -> list[TopicDiff]:
        wanted = self._wanted(topics)
        md = self.client.list_topics(timeout=self.timeout)
        diffs: list[TopicDiff] = []
        existing = [n for n in wanted if n in md.topics and md.topics[n].error is None]
        configs = self._describe_configs(existing)
        for name, topic in wanted.items():
            d = TopicDiff(name)
            tmd = md.topics.get(name)
            if tmd is None or tmd.error is not None:
                d.missing = True
                diffs.append(d)
                continue
            actual_parts = len(tmd.partitions)
            if actual_parts != topic.partitions:
                d.partitions = (actual_parts, topic.partitions)
            replicas = {len(p.replicas) for p in tmd.partitions.values()}
            actual_rf = max(replicas) if replicas else 0
            if actual_rf != self.replication(topic):
                d.replication = (actual_rf, self.replication(topic))
            actual_cfg = configs.get(name, {})
            for k, v in topic.topic_config().items():
                if actual_cfg.get(k) != v:
                    d.configs[k] = (actual_cfg.get(k), v)
            diffs.append(d)
        return diffs

    def _describe_configs(self, names: list[str]) -> dict[str, dict[str, str]]:
        if not names:
            return {}
        futs = self.client.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, n) for n in names])
        out: dict[str, dict[str, str]] = {}
        for res, fut in futs.items():
            entries = fut.result(timeout=self.timeout)
            out[res.name] = {k: e.value for k, e in entries.items()}
        return out

    def sync(self, topics: Iterable[Topic] = ALL_TOPICS) -> SyncReport:
        topics = list(topics)
        wanted = self._wanted(topics)
        report = SyncReport()
        diffs = self.diff(topics)
        to_create = [d.name for d in diffs if d.missing]
        if to_create:
            new = [
                NewTopic(
                    n,
                    num_partitions=wanted[n].partitions,
                    replication_factor=self.replication(wanted[n]),
                    config=wanted[n].topic_config(),
                )
                for n in to_create
            ]
            for name, fut in self.client.create_topics(new, operation_timeout=self.timeout).items():
                try:
                    fut.result(timeout=self.timeout)
                    report.created.append(name)
                except KafkaException as exc:
                    err = exc.args[0]
                    if err.code() != 36:  # TOPIC_ALREADY_EXISTS: someone else raced us
                        raise KafkaSetupError(f"creating topic {name}: {err.str()}") from exc
            self._wait_ready(to_create)
        grow = [d for d in diffs if d.partitions and d.partitions[1] > d.partitions[0]]
        if grow:
            futs = self.client.create_partitions([NewPartitions(d.name, d.partitions[1]) for d in grow if d.partitions])
            for name, fut in futs.items():
                fut.result(timeout=self.timeout)
                report.repartitioned.append(name)
        for d in diffs:
            if d.partitions and d.partitions[1] < d.partitions[0]:
                report.drift.append(
                    f"{d.name}: has {d.partitions[0]} partitions, catalog wants "
                    f"{d.partitions[1]}; Kafka cannot shrink a topic"
                )
            if d.replication:
                report.drift.append(d.describe())
        reconf = [d for d in diffs if d.configs and not d.missing]
        if reconf:
            resources = []
            for d in reconf:
                res = ConfigResource(
                    ConfigResource.Type.TOPIC,
                    d.name,
                    incremental_configs=[
                        ConfigEntry(k, w, incremental_operation=AlterConfigOpType.SET)
                        for k, (_, w) in d.configs.items()
                    ],
                )
                resources.append(res)
            for res, fut in self.client.incremental_alter_configs(resources).items():
                fut.result(timeout=self.timeout)
                report.reconfigured.append(res.name)
        report.diffs = diffs
        return report

    def _wait_ready(self, names: list[str]) -> None:
        """Return once every topic is in the metadata with a leader for each partition: the
        broker answers a create before its metadata says so, and a producer or a second
        sync started at once would see the topic missing (seen under load)."""
        deadline = time.monotonic() + self.timeout
        pending = set(names)
        while pending:
            md = self.client.list_topics(timeout=self.timeout)
            for n in list(pending):
                t = md.topics.get(n)
                if (
                    t is not None
                    and t.error is None
                    and t.partitions
                    and all(p.leader >= 0 for p in t.partitions.values())
                ):
                    pending.discard(n)
            if not pending:
                return
            if time.monotonic() > deadline:
                raise KafkaSetupError(
                    f"topics created but without a leader after {self.timeout:.0f} s: {sorted(pending)}"
                )
            time.sleep(0.1)

    def delete(self, names: Iterable[str]) -> None:
        names = list(names)
        if not names:
            return
        for _, fut in self.client.delete_topics(names, operation_timeout=self.timeout).items():
            try:
                fut.result(timeout=self.timeout)
            except KafkaException:
                pass

    def list_names(self) -> set[str]:
        return set(self.client.list_topics(timeout=self.timeout).topics)
