"""``netpilot strimzi apply`` against a real Kubernetes API server (upstream
apiextensions-apiserver + embedded etcd, built from tools/kube-apiserver) serving the
Strimzi 1.2.0 CRDs. There is no Strimzi operator here: the tests that need a Ready
condition write it through the status subresource, as the operator does."""

from __future__ import annotations

import copy
import subprocess
import sys
import threading
import time

import pytest
from kubernetes import client, config

from netpilot import catalog
from strimzi.apply import Applier, Ref, api_client
from strimzi.errors import CrdsMissingError, ForbiddenError, ServerInvalidError
from strimzi.render import RenderOptions, render_all
from tests.strimzi.kube_apiserver import KubeApiServer

GROUP, VERSION = "kafka.strimzi.io", "v1"


def all_docs(namespace: str) -> list[dict]:
    files = render_all(RenderOptions(namespace=namespace))
    return [*files["kafka.yaml"], *files["topics.yaml"], *files["users.yaml"]]


# One CR per catalog topic and component, plus the Kafka and its node pools: derived, so a
# topic added to the catalog needs no edit here.
CR_COUNT = sum(len(docs) for docs in render_all().values())


def objects(server: KubeApiServer) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(config.new_client_from_config(str(server.kubeconfig)))


def netpilot(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "netpilot.cli", "strimzi", *args], capture_output=True, text=True, timeout=120
    )


def count(server: KubeApiServer, namespace: str, plural: str) -> int:
    listed = objects(server).list_namespaced_custom_object(GROUP, VERSION, namespace, plural)
    return len(listed["items"])


def test_missing_crds_say_to_install_strimzi(bare_apiserver: KubeApiServer) -> None:
    applier = Applier(api_client(bare_apiserver.kubeconfig))
    with pytest.raises(CrdsMissingError, match="install the Strimzi 1.2.0 operator"):
        applier.apply(all_docs("kafka"), dry_run=True)


def test_dry_run_validates_on_the_server_and_persists_nothing(strimzi_apiserver: KubeApiServer, manifests_dir) -> None:
    proc = netpilot(
        "apply", "--dry-run", "--dir", str(manifests_dir), "--kubeconfig", str(strimzi_apiserver.kubeconfig)
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("validated by the server (dry run)") == CR_COUNT
    for plural in ("kafkas", "kafkanodepools", "kafkatopics", "kafkausers"):
        assert count(strimzi_apiserver, "kafka", plural) == 0


def test_apply_creates_every_cr_with_the_netpilot_field_manager(
    strimzi_apiserver: KubeApiServer, manifests_dir
) -> None:
    args = ("apply", "--dir", str(manifests_dir), "--kubeconfig", str(strimzi_apiserver.kubeconfig))
    proc = netpilot(*args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count(": applied") == CR_COUNT
    counts = {
        p: count(strimzi_apiserver, "kafka", p) for p in ("kafkas", "kafkanodepools", "kafkatopics", "kafkausers")
    }
    assert counts == {
        "kafkas": 1,
        "kafkanodepools": 2,
        "kafkatopics": len(catalog.ALL_TOPICS),
        "kafkausers": len(catalog.Component),
    }
    topic = objects(strimzi_apiserver).get_namespaced_custom_object(
        GROUP, VERSION, "kafka", "kafkatopics", "netpilot.flows.v1"
    )
    assert topic["spec"]["partitions"] == 6
    managers = {(m["manager"], m["operation"]) for m in topic["metadata"]["managedFields"]}
    assert ("netpilot", "Apply") in managers
    generation = topic["metadata"]["generation"]
    assert netpilot(*args).returncode == 0  # idempotent: same spec, same generation
    again = objects(strimzi_apiserver).get_namespaced_custom_object(
        GROUP, VERSION, "kafka", "kafkatopics", "netpilot.flows.v1"
    )
    assert again["metadata"]["generation"] == generation


@pytest.fixture
def applier(strimzi_apiserver: KubeApiServer) -> Applier:
    return Applier(api_client(strimzi_apiserver.kubeconfig))


def broken(kind: str) -> dict:
    doc = next(d for d in all_docs("broken") if d["kind"] == kind)
    return copy.deepcopy(doc)


def test_server_rejects_an_unknown_field(applier: Applier) -> None:
    topic = broken("KafkaTopic")
    topic["spec"]["partitons"] = 3
    with pytest.raises(ServerInvalidError, match=r"\.spec\.partitons: field not declared in schema"):
        applier.apply([topic], dry_run=True)


def test_server_rejects_a_wrong_type_with_its_message(applier: Applier) -> None:
    topic = broken("KafkaTopic")
    topic["spec"]["partitions"] = "six"
    with pytest.raises(ServerInvalidError, match=r"\.spec\.partitions: expected numeric"):
        applier.apply([topic])


def test_server_rejects_a_value_outside_the_schema_with_422(applier: Applier) -> None:
    user = broken("KafkaUser")
    user["spec"]["authorization"]["acls"][0]["resource"]["patternType"] = "wildcard"
    with pytest.raises(ServerInvalidError, match=r'patternType: Unsupported value: "wildcard"'):
        applier.apply([user], dry_run=True)


def test_server_rejects_singular_acl_operation(applier: Applier) -> None:
    user = broken("KafkaUser")
    acl = user["spec"]["authorization"]["acls"][0]
    acl["operation"] = acl.pop("operations")[0]
    with pytest.raises(ServerInvalidError, match="operation"):
        applier.apply([user], dry_run=True)


def test_server_rejects_a_node_pool_without_storage(applier: Applier) -> None:
    pool = broken("KafkaNodePool")
    del pool["spec"]["storage"]
    with pytest.raises(ServerInvalidError, match=r"spec\.storage: Required value"):
        applier.apply([pool], dry_run=True)


def test_server_evaluates_the_cel_rules(applier: Applier) -> None:
    user = broken("KafkaUser")
    user["spec"]["authentication"] = {"type": "tls", "validityDays": 30, "renewalDays": 60}
    with pytest.raises(ServerInvalidError, match="'renewalDays' must be less than 'validityDays'"):
        applier.apply([user], dry_run=True)


def test_forbidden_is_reported_as_such(strimzi_apiserver: KubeApiServer) -> None:
    anonymous = Applier(api_client(strimzi_apiserver.anonymous_kubeconfig))
    with pytest.raises(ForbiddenError, match=r"forbidden \(403\).*system:anonymous"):
        anonymous.apply(all_docs("kafka"), dry_run=True)


def _mark_ready(server: KubeApiServer, ref: Ref, delay_s: float) -> None:
    """What the Strimzi topic operator does once the topic exists in Kafka."""
    time.sleep(delay_s)
    api = objects(server)
    obj = api.get_namespaced_custom_object(GROUP, VERSION, ref.namespace, ref.plural, ref.name)
    api.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        ref.namespace,
        ref.plural,
        ref.name,
        {
            "status": {
                "observedGeneration": obj["metadata"]["generation"],
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-26T10:00:00Z"}],
            }
        },
        _content_type="application/merge-patch+json",
    )


def test_wait_returns_once_the_operator_reports_ready(strimzi_apiserver: KubeApiServer, applier: Applier) -> None:
    topics = [d for d in all_docs("wait") if d["kind"] == "KafkaTopic"][:2]
    refs = applier.apply(topics)
    marks = [threading.Thread(target=_mark_ready, args=(strimzi_apiserver, r, 0.5)) for r in refs]
    for t in marks:
        t.start()
    started = time.monotonic()
    applier.wait_ready(refs, timeout_s=30, poll_s=0.2)
    for t in marks:
        t.join()
    assert 0.4 < time.monotonic() - started < 30


def test_wait_times_out_naming_what_is_not_ready(strimzi_apiserver: KubeApiServer) -> None:
    proc = netpilot(
        "apply",
        "--wait",
        "--timeout",
        "2",
        "--dir",
        str(render_dir_for(strimzi_apiserver)),
        "--kubeconfig",
        str(strimzi_apiserver.kubeconfig),
    )
    assert proc.returncode == 1
    assert "not Ready after 2s" in proc.stderr
    assert "Kafka/timeout/netpilot: no Ready condition yet" in proc.stderr
    assert "Traceback" not in proc.stderr


def render_dir_for(server: KubeApiServer):
    from strimzi.render import write

    out = server.data_dir / "manifests-timeout"
    write(out, RenderOptions(namespace="timeout"))
    return out


def test_apply_refuses_an_invalid_cr_before_contacting_the_cluster(tmp_path) -> None:
    from strimzi.render import write

    write(tmp_path)
    kafka = (tmp_path / "kafka.yaml").read_text()
    (tmp_path / "kafka.yaml").write_text(kafka.replace("  storage:\n", "  storrage:\n", 1))
    proc = netpilot("apply", "--dir", str(tmp_path), "--kubeconfig", "/nonexistent")
    assert proc.returncode == 1
    assert "KafkaNodePool/controllers: spec.storage: Required value" in proc.stderr
    assert 'unknown field "spec.storrage"' in proc.stderr
    assert "Traceback" not in proc.stderr


def test_wait_ignores_a_stale_ready_condition() -> None:
    from strimzi.apply import ready_state

    stale = {
        "metadata": {"generation": 3},
        "status": {"observedGeneration": 2, "conditions": [{"type": "Ready", "status": "True"}]},
    }
    assert ready_state(stale) == (False, "operator has seen generation 2, current is 3")
    failed = {
        "metadata": {"generation": 1},
        "status": {
            "observedGeneration": 1,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "KafkaError",
                    "message": "Replication factor: 3 larger than available brokers: 1.",
                }
            ],
        },
    }
    ok, why = ready_state(failed)
    assert not ok and "KafkaError Replication factor" in why
