"""Offline validation against the Strimzi 1.2.0 CRDs: the rendered CRs pass, broken ones fail
with a message that says what and where."""

from __future__ import annotations

import copy
import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from strimzi.crds import load_crds
from strimzi.render import MANIFESTS_DIR, render_all
from strimzi.validate import validate_document, validate_files


def rendered() -> dict[str, dict]:
    docs = {}
    for file_docs in render_all().values():
        for d in file_docs:
            docs.setdefault(d["kind"], d)
    return docs


def problems_of(doc: dict) -> list[str]:
    return list(validate_document(doc).problems)


def test_every_committed_cr_is_valid() -> None:
    results = validate_files(sorted(MANIFESTS_DIR.glob("*.yaml")))
    # every CR of every file: the Kafka, its node pools, one per catalog topic and component
    assert len(results) == sum(len(docs) for docs in render_all().values())
    assert [r.describe() for r in results if not r.ok] == []


def test_every_cel_rule_in_the_crds_compiles_and_runs() -> None:
    """All x-kubernetes-validations of all 7 CRDs evaluate on a sample value (no CRD rule
    the validator cannot run)."""
    from strimzi.cel import evaluate_rules

    rules = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            rules.extend(node.get("x-kubernetes-validations") or ())
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for crd in load_crds().values():
        for version in crd.versions.values():
            walk(version.schema)
    assert len(rules) >= 10
    sample = {
        "type": "tls",
        "topologyKey": "zone",
        "envVarName": "X",
        "validityDays": 10,
        "renewalDays": 5,
        "valueFrom": {},
    }
    for rule in rules:
        problems = evaluate_rules([rule], sample, "x")
        assert all("could not be evaluated" not in p and "does not compile" not in p for p in problems), problems


def test_unknown_field_is_rejected() -> None:
    kafka = copy.deepcopy(rendered()["Kafka"])
    kafka["spec"]["kafka"]["listners"] = []
    assert problems_of(kafka) == ['spec.kafka.listners: unknown field "spec.kafka.listners"']


def test_unknown_field_under_preserve_unknown_fields_is_accepted() -> None:
    kafka = copy.deepcopy(rendered()["Kafka"])
    kafka["spec"]["kafka"]["config"]["any.broker.setting"] = "x"  # config preserves unknowns
    assert problems_of(kafka) == []


def test_wrong_type_is_rejected() -> None:
    topic = copy.deepcopy(rendered()["KafkaTopic"])
    topic["spec"]["partitions"] = "six"
    (problem,) = problems_of(topic)
    assert problem.startswith("spec.partitions:") and "must be of type integer" in problem


def test_int_or_string_accepts_both() -> None:
    pool = copy.deepcopy(rendered()["KafkaNodePool"])
    pool["spec"]["resources"]["requests"]["cpu"] = 2
    assert problems_of(pool) == []
    pool["spec"]["resources"]["requests"]["cpu"] = "two cores"
    (problem,) = problems_of(pool)
    assert "spec.resources.requests.cpu" in problem and "must match" in problem


def test_v1beta2_is_rejected_with_the_served_version() -> None:
    user = copy.deepcopy(rendered()["KafkaUser"])
    user["apiVersion"] = "kafka.strimzi.io/v1beta2"
    (problem,) = problems_of(user)
    assert "kafka.strimzi.io/v1beta2 is not served" in problem
    assert "served: kafka.strimzi.io/v1" in problem


def test_singular_acl_operation_is_rejected() -> None:
    user = copy.deepcopy(rendered()["KafkaUser"])
    acl = user["spec"]["authorization"]["acls"][0]
    acl["operation"] = acl.pop("operations")[0]
    problems = problems_of(user)
    assert 'spec.authorization.acls[0].operation: unknown field "spec.authorization.acls[0].operation"' in problems
    assert "spec.authorization.acls[0].operations: Required value" in problems


def test_node_pool_without_storage_is_rejected() -> None:
    pool = copy.deepcopy(rendered()["KafkaNodePool"])
    del pool["spec"]["storage"]
    assert problems_of(pool) == ["spec.storage: Required value"]


def test_cel_violation_is_rejected_with_the_rule_message() -> None:
    user = copy.deepcopy(rendered()["KafkaUser"])
    user["spec"]["authentication"] = {"type": "tls", "validityDays": 30, "renewalDays": 60}
    assert problems_of(user) == ["spec.authentication: Invalid value: 'renewalDays' must be less than 'validityDays'."]
    user["spec"]["authentication"] = {"type": "scram-sha-512", "validityDays": 30}
    (problem,) = problems_of(user)
    assert "'validityDays' and 'renewalDays' can be configured only with 'type: tls'" in problem


def test_cel_rule_that_cannot_evaluate_is_a_failure() -> None:
    kafka = copy.deepcopy(rendered()["Kafka"])
    kafka["spec"]["kafka"]["rack"] = {"type": "topology-label"}
    (problem,) = problems_of(kafka)
    assert problem.startswith("spec.kafka.rack: Invalid value: topologyKey property is required")


def test_enum_and_metadata_problems_are_reported() -> None:
    topic = copy.deepcopy(rendered()["KafkaTopic"])
    topic["metadata"]["name"] = "Flows_V1"
    topic["metadata"]["labels"]["replicas"] = 3
    user = copy.deepcopy(rendered()["KafkaUser"])
    user["spec"]["authorization"]["acls"][0]["resource"]["patternType"] = "wildcard"
    assert any("metadata.name: Invalid value: 'Flows_V1'" in p for p in problems_of(topic))
    assert any("metadata.labels: Invalid value" in p for p in problems_of(topic))
    (problem,) = problems_of(user)
    assert 'Unsupported value: "wildcard": supported values: "literal", "prefix"' in problem


def test_validate_cli_exit_codes_and_messages(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "netpilot.cli", "strimzi", "validate"]
    ok = subprocess.run(cmd + [str(p) for p in sorted(MANIFESTS_DIR.glob("*.yaml"))], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    crs = sum(len(docs) for docs in render_all().values())
    assert f"{crs} resource(s), 0 invalid" in ok.stdout
    broken = copy.deepcopy(rendered()["KafkaNodePool"])
    del broken["spec"]["storage"]
    path = tmp_path / "pool.yaml"
    path.write_text(yaml.safe_dump(broken))
    bad = subprocess.run(cmd + [str(path)], capture_output=True, text=True)
    assert bad.returncode == 1
    assert "KafkaNodePool/controllers: 1 problem(s)" in bad.stdout
    assert "spec.storage: Required value" in bad.stdout


@pytest.mark.parametrize("text", ["kind: [", "- just\n- a list\n"])
def test_validate_cli_rejects_non_cr_yaml_cleanly(tmp_path: Path, text: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(text)
    proc = subprocess.run(
        [sys.executable, "-m", "netpilot.cli", "strimzi", "validate", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr


def _source_blobs() -> dict[str, str]:
    """file name -> upstream git blob id, as crds/SOURCE.txt records them."""
    from strimzi.crds import VENDORED_CRDS

    lines = (VENDORED_CRDS / "SOURCE.txt").read_text().splitlines()
    found = (re.match(r"\s+(\S+\.yaml) <- \S+ \(blob ([0-9a-f]{40})\)", line) for line in lines)
    return {m[1]: m[2] for m in found if m}


def test_vendored_crds_are_the_strimzi_files_source_txt_names() -> None:
    """The vendored copy is complete and unmodified: exactly the files SOURCE.txt lists, each
    with the git blob id of the Strimzi 1.2.0 file it was copied from."""
    from strimzi.crds import VENDORED_CRDS

    blobs = _source_blobs()
    assert len(blobs) == 7
    assert sorted(p.name for p in VENDORED_CRDS.glob("*.yaml")) == sorted(blobs)
    for name, blob in blobs.items():
        data = (VENDORED_CRDS / name).read_bytes()
        assert hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() == blob, name


def test_vendored_crds_define_the_strimzi_kinds_served_as_v1() -> None:
    from strimzi.crds import VENDORED_CRDS

    crds = load_crds(VENDORED_CRDS)
    assert sorted(kind for _, kind in crds) == sorted(
        ["Kafka", "KafkaBridge", "KafkaConnect", "KafkaNodePool", "KafkaRebalance", "KafkaTopic", "KafkaUser"]
    )
    assert {group for group, _ in crds} == {"kafka.strimzi.io"}
    assert all("v1" in crd.served_versions() for crd in crds.values())


def test_crds_dir_is_the_vendored_copy_unless_overridden(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from netpilot.errors import ConfigError
    from strimzi.crds import ENV_VAR, VENDORED_CRDS, crds_dir

    monkeypatch.delenv(ENV_VAR, raising=False)
    assert crds_dir() == VENDORED_CRDS
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert crds_dir() == tmp_path
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match=ENV_VAR):
        crds_dir()
