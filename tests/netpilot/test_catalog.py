"""The catalog is the single source of truth: consistent, complete, and applied to the broker."""

from __future__ import annotations

from confluent_kafka.admin import AdminClient, ConfigResource

from netpilot import catalog
from netpilot.kafka.admin import TopicAdmin
from netpilot.settings import KafkaSettings
from netpilot.wire import SCHEMAS


def test_catalog_is_consistent() -> None:
    names = [t.name for t in catalog.ALL_TOPICS]
    assert len(set(names)) == len(names), "duplicate topic names"
    assert len({t.id for t in catalog.ALL_TOPICS}) == len(names)
    for t in catalog.ALL_TOPICS:
        assert t.name.startswith("netpilot.") and t.name.rsplit(".", 1)[1].startswith("v"), t.name
        assert t.value_schema in SCHEMAS, f"{t.name}: schema {t.value_schema} has no codec"
        assert t.producers, f"{t.name} has no producer"
        assert t.partitions >= 1 and t.replication >= 1
        if "compact" in t.cleanup_policy:
            assert t.retention_ms is None
        # the schema major is the topic suffix: a breaking change means a new topic
        assert t.name.endswith(f".v{t.value_schema.rsplit('/', 1)[1]}"), t.name


def test_required_topics_exist() -> None:
    wanted = {
        "flows",
        "raw_datagrams",
        "link_stats",
        "link_inventory",
        "routes",
        "exporter_templates",
        "flow_aggregates",
        "link_utilisation",
        "recommendations",
        "cycle_summaries",
        "dead_letters",
    }
    assert wanted <= set(catalog.BY_ID)
    compacted = {t.id for t in catalog.ALL_TOPICS if t.cleanup_policy == "compact"}
    assert {"link_inventory", "routes", "exporter_templates", "recommendations"} <= compacted
    assert catalog.RECOMMENDATIONS.key == "pop|prefix"


def test_sync_creates_topics_with_catalog_settings(kafka_broker: str) -> None:
    import uuid

    settings = KafkaSettings(bootstrap_servers=kafka_broker, topic_prefix=f"sync{uuid.uuid4().hex[:8]}.")
    admin = TopicAdmin(settings)
    try:
        first = admin.sync()
        assert sorted(first.created) == sorted(settings.topic(t) for t in catalog.ALL_TOPICS)
        assert not first.drift
        # idempotent: a second run changes nothing and everything is in sync
        second = admin.sync()
        assert not (second.created or second.repartitioned or second.reconfigured or second.drift)
        assert all(d.in_sync for d in admin.diff())

        client = AdminClient({"bootstrap.servers": kafka_broker})
        md = client.list_topics(timeout=10)
        for t in catalog.ALL_TOPICS:
            name = settings.topic(t)
            assert len(md.topics[name].partitions) == t.partitions
            res = ConfigResource(ConfigResource.Type.TOPIC, name)
            cfg = client.describe_configs([res])[res].result(timeout=10)
            for k, v in t.topic_config().items():
                assert cfg[k].value == v, (name, k)

        # drift is reported and repaired: change a config behind the catalog's back
        _set_retention(client, settings.topic(catalog.FLOWS), "1000")
        drifted = _wait_for_drift(admin, settings.topic(catalog.FLOWS))
        assert drifted.configs["retention.ms"] == ("1000", str(catalog.FLOWS.retention_ms))
        repaired = admin.sync()
        assert settings.topic(catalog.FLOWS) in repaired.reconfigured
        # the repair reaches the broker's view as asynchronously as the drift did (CI once
        # read the old value right after the repair)
        assert not [d for d in _wait_until_in_sync(admin) if not d.in_sync]

        # more partitions than the catalog wants cannot be repaired: reported as drift
        from confluent_kafka.admin import NewPartitions

        dl = settings.topic(catalog.DEAD_LETTERS)
        for _, fut in client.create_partitions([NewPartitions(dl, catalog.DEAD_LETTERS.partitions + 1)]).items():
            fut.result(timeout=10)
        report = admin.sync()
        assert any(dl in line and "cannot shrink" in line for line in report.drift)
    finally:
        admin.delete(settings.topic(t) for t in catalog.ALL_TOPICS)


def _set_retention(client: AdminClient, topic: str, value: str) -> None:
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry

    res = ConfigResource(
        ConfigResource.Type.TOPIC,
        topic,
        incremental_configs=[ConfigEntry("retention.ms", value, incremental_operation=AlterConfigOpType.SET)],
    )
    for _, fut in client.incremental_alter_configs([res]).items():
        fut.result(timeout=10)


def _wait_for_drift(admin: TopicAdmin, name: str, timeout: float = 15.0):
    """KRaft propagates config changes to the broker's view asynchronously."""
    diffs = _diff_once(admin, lambda ds: any(d.name == name and d.configs for d in ds), timeout)
    return {d.name: d for d in diffs}[name]


def _wait_until_in_sync(admin: TopicAdmin, timeout: float = 15.0) -> list:
    """Every catalog topic's diff, once all are in sync (a repair propagates as a drift does)."""
    return _diff_once(admin, lambda ds: all(d.in_sync for d in ds), timeout)


def _diff_once(admin: TopicAdmin, done, timeout: float) -> list:
    """``admin.diff()`` once ``done(diffs)`` holds, or as it stands when ``timeout`` has passed."""
    import time

    deadline = time.time() + timeout
    while True:
        diffs = admin.diff()
        if done(diffs) or time.time() > deadline:
            return diffs
        time.sleep(0.2)


def test_min_replicas_is_wanted_of_existing_topics_and_refused_beyond_the_brokers(
    kafka_settings: KafkaSettings,
) -> None:
    """``topics.min_replicas`` (a cluster's 3): topics made with fewer replicas are drift
    that sync reports and does not touch; on one broker, creating with 3 fails with
    Kafka's reason. (Created with 3 replicas on three brokers: tests/e2e/test_chaos.py.)"""
    import uuid

    import pytest

    from netpilot.errors import KafkaSetupError

    admin = TopicAdmin(kafka_settings, min_replicas=3)
    flows = {d.name: d for d in admin.diff([catalog.FLOWS])}[kafka_settings.topic(catalog.FLOWS)]
    assert flows.replication == (1, 3) and not flows.in_sync
    assert "replication 1 (wanted 3" in flows.describe()
    report = admin.sync([catalog.FLOWS])
    assert not report.created and any("replication 1 (wanted 3" in line for line in report.drift), report
    # the same from the command line, set as a platform team would
    from typer.testing import CliRunner

    from netpilot.kafka.cli import app

    env = {
        "NETPILOT_KAFKA__BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "NETPILOT_KAFKA__TOPIC_PREFIX": kafka_settings.topic_prefix,
        "NETPILOT_TOPICS__MIN_REPLICAS": "3",
    }
    res = CliRunner().invoke(app, ["diff"], env=env)
    assert res.exit_code == 1 and f"{kafka_settings.topic(catalog.FLOWS)}: replication 1 (wanted 3" in res.output

    fresh = TopicAdmin(
        KafkaSettings(bootstrap_servers=kafka_settings.bootstrap_servers, topic_prefix=f"rf{uuid.uuid4().hex[:8]}."),
        min_replicas=3,
    )
    with pytest.raises(KafkaSetupError, match="creating topic .*[Rr]eplication factor"):
        fresh.sync([catalog.FLOWS])
