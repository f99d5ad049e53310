"""The committed CRs are a fresh render of the catalog, and every KafkaUser grants exactly
what the catalog says its component does (checked with Kafka's own ACL semantics below,
not by re-running strimzi.acls)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from netpilot import catalog
from netpilot.catalog import Component
from strimzi.render import MANIFESTS_DIR, RenderOptions, render_all, render_files, user_name

# Kafka: these operations imply Describe on the same resource.
IMPLIES_DESCRIBE = {"Read", "Write", "Delete", "Alter"}
ALLOWED_OPS = {
    "topic": {"Read", "Write", "Describe", "Create"},
    "group": {"Read", "Describe"},
    "transactionalId": {"Write", "Describe"},
}
FAUST = {Component.STREAMS: "netpilot-streams-", Component.AUTOPILOT: "netpilot-autopilot-"}


def committed() -> dict[str, list[dict]]:
    return {p.name: [d for d in yaml.safe_load_all(p.read_text()) if d] for p in sorted(MANIFESTS_DIR.glob("*.yaml"))}


def users() -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in committed()["users.yaml"]}


def allows(acls: list[dict], rtype: str, name: str, op: str) -> bool:
    for acl in acls:
        res = acl["resource"]
        if res["type"] != rtype or acl.get("type", "allow") != "allow":
            continue
        pattern = res.get("patternType", "literal")
        matched = name == res["name"] if pattern == "literal" else name.startswith(res["name"])
        ops = set(acl["operations"])
        if matched and (op in ops or (op == "Describe" and ops & IMPLIES_DESCRIBE)):
            return True
    return False


def test_committed_manifests_equal_a_fresh_render() -> None:
    fresh = render_files()
    on_disk = {p.name: p.read_text() for p in MANIFESTS_DIR.glob("*.yaml")}
    assert set(on_disk) == set(fresh), "run `netpilot strimzi render`"
    for name, text in fresh.items():
        assert on_disk[name] == text, f"{name} is stale: run `netpilot strimzi render`"


def test_render_check_cli_detects_a_stale_file(tmp_path) -> None:
    from strimzi.render import write

    write(tmp_path)
    cmd = [
        sys.executable,
        "-m",
        "netpilot.cli",
        "strimzi",
        "render",
        "--check",
        "--out",
        str(tmp_path),
    ]  # deploy bases: the committed ones
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    (tmp_path / "users.yaml").write_text((tmp_path / "users.yaml").read_text().replace("Describe", "Alter", 1))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 1 and "users.yaml" in proc.stderr


def test_one_kafkatopic_per_catalog_topic_with_partitions_and_config() -> None:
    topics = {d["spec"]["topicName"]: d for d in committed()["topics.yaml"]}
    assert set(topics) == {t.name for t in catalog.ALL_TOPICS}
    for t in catalog.ALL_TOPICS:
        spec = topics[t.name]["spec"]
        assert spec["partitions"] == t.partitions
        assert spec["config"] == t.topic_config()
        assert spec["replicas"] == max(t.replication, 3)
        assert topics[t.name]["metadata"]["labels"]["strimzi.io/cluster"] == "netpilot"


def test_topic_prefix_applies_to_topics_and_acls() -> None:
    docs = render_all(RenderOptions(topic_prefix="lab."))
    assert all(d["spec"]["topicName"].startswith("lab.netpilot.") for d in docs["topics.yaml"])
    for user in docs["users.yaml"]:
        for acl in user["spec"]["authorization"]["acls"]:
            res = acl["resource"]
            if res["type"] == "topic" and res["patternType"] == "literal":
                assert res["name"].startswith("lab.netpilot."), res


def test_kafka_is_kraft_with_node_pools_tls_listeners_and_simple_authorization() -> None:
    kafka, *pools = committed()["kafka.yaml"]
    assert kafka["apiVersion"] == "kafka.strimzi.io/v1" and kafka["kind"] == "Kafka"
    spec = kafka["spec"]
    assert spec["kafka"]["version"] == "4.3.1"
    auth = {(l["port"], l["tls"], l["authentication"]["type"]) for l in spec["kafka"]["listeners"]}
    assert auth == {(9093, True, "scram-sha-512"), (9094, True, "tls")}
    assert spec["kafka"]["authorization"] == {"type": "simple"}
    assert spec["kafka"]["metricsConfig"]["type"] == "strimziMetricsReporter"
    assert spec["kafka"]["rack"]["topologyKey"] == "topology.kubernetes.io/zone"
    assert "cruiseControl" in spec and "topicOperator" in spec["entityOperator"]
    roles = {p["metadata"]["name"]: p["spec"]["roles"] for p in pools}
    assert roles == {"controllers": ["controller"], "brokers": ["broker"]}
    assert all(p["spec"]["storage"] for p in pools)
    no_rack = render_all(RenderOptions(rack_topology_key=None))["kafka.yaml"][0]
    assert "rack" not in no_rack["spec"]["kafka"]


def test_one_kafkauser_per_component() -> None:
    assert set(users()) == {user_name(c) for c in Component}
    auth = {name: u["spec"]["authentication"]["type"] for name, u in users().items()}
    assert set(auth.values()) == {"tls", "scram-sha-512"}  # both listeners are used


@pytest.mark.parametrize("component", list(Component), ids=lambda c: c.value)
def test_acls_cover_the_catalog_use_of(component: Component) -> None:
    acls = users()[user_name(component)]["spec"]["authorization"]["acls"]
    group = catalog.consumer_group(component)
    for topic in catalog.topics_produced_by(component):
        for op in ("Write", "Describe"):
            assert allows(acls, "topic", topic.name, op), (topic.name, op)
    for topic in catalog.topics_consumed_by(component):
        for op in ("Read", "Describe"):
            assert allows(acls, "topic", topic.name, op), (topic.name, op)
        assert allows(acls, "group", group, "Read"), group
    if component in FAUST:
        prefix = FAUST[component]
        assert allows(acls, "group", group, "Read")
        for internal in (f"{prefix}windows-changelog", f"{prefix}__assignor-__leader"):
            for op in ("Create", "Read", "Write"):
                assert allows(acls, "topic", internal, op), (internal, op)
        assert allows(acls, "transactionalId", f"{prefix}{group}-3", "Write")


@pytest.mark.parametrize("component", list(Component), ids=lambda c: c.value)
def test_acls_grant_nothing_the_catalog_does_not_ask_for(component: Component) -> None:
    acls = users()[user_name(component)]["spec"]["authorization"]["acls"]
    produced = {t.name for t in catalog.topics_produced_by(component)}
    consumed = {t.name for t in catalog.topics_consumed_by(component)}
    for acl in acls:
        res, ops = acl["resource"], set(acl["operations"])
        where = f"{res} {sorted(ops)}"
        assert "*" not in res["name"], f"wildcard: {where}"
        assert acl.get("type", "allow") == "allow" and "host" not in acl, where
        assert res["type"] in ALLOWED_OPS, f"resource type not needed: {where}"
        assert ops <= ALLOWED_OPS[res["type"]], f"operation not needed: {where}"
        if res["patternType"] == "prefix":
            assert component in FAUST and res["name"] == FAUST[component], where
            continue
        if res["type"] == "topic":
            assert res["name"] in produced | consumed, where
            assert "Create" not in ops, where
            if "Write" in ops:
                assert res["name"] in produced, where
            if "Read" in ops:
                assert res["name"] in consumed, where
        elif res["type"] == "group":
            assert res["name"] == catalog.consumer_group(component), where
            assert consumed or component in FAUST, where
        else:
            pytest.fail(f"literal {where} is not justified by the catalog")


def test_dead_letter_producers_can_write_dead_letters() -> None:
    for component in catalog.DEAD_LETTERS.producers:
        acls = users()[user_name(component)]["spec"]["authorization"]["acls"]
        assert allows(acls, "topic", catalog.DEAD_LETTERS.name, "Write"), component
    for component in set(Component) - set(catalog.DEAD_LETTERS.producers):
        acls = users()[user_name(component)]["spec"]["authorization"]["acls"]
        assert not allows(acls, "topic", catalog.DEAD_LETTERS.name, "Write"), component


def test_cli_defaults_are_the_render_directories() -> None:
    from strimzi import cli
    from strimzi.deploy import GENERATED_DIR

    assert cli.MANIFESTS == MANIFESTS_DIR
    assert cli.GENERATED == GENERATED_DIR
