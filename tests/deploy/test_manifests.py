"""deploy/: the Kustomize bases are a fresh render, every overlay builds with a real kustomize,
every object passes the Kubernetes 1.33 schemas (strict: unknown fields fail), and each
Deployment uses exactly the Secret and listener of its component's KafkaUser."""

from __future__ import annotations

import copy
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from netpilot.settings import ComponentSettings, load_settings
from strimzi.deploy import DEPLOY_DIR, WORKLOADS, render_base
from strimzi.render import MANIFESTS_DIR
from tests.deploy import kustomize

K8S_VERSION = "1.33.0"
OVERLAYS = sorted(p for p in (DEPLOY_DIR / "overlays").iterdir() if p.is_dir())
SITE_SECRETS = {"netpilot-clickhouse", "netpilot-snmp-credentials"}


@pytest.fixture(scope="module", params=OVERLAYS, ids=lambda p: p.name)
def overlay(request: pytest.FixtureRequest) -> tuple[Path, list[dict]]:
    return request.param, kustomize.build(request.param)


def kafka_users() -> dict[str, dict]:
    docs = yaml.safe_load_all((MANIFESTS_DIR / "users.yaml").read_text())
    return {d["metadata"]["name"]: d for d in docs if d}


def kafka_cluster() -> dict:
    return next(yaml.safe_load_all((MANIFESTS_DIR / "kafka.yaml").read_text()))


def test_bases_equal_a_fresh_render() -> None:
    for tier in ("core", "pop"):
        for name, text in render_base(tier).items():
            path = DEPLOY_DIR / "base" / tier / name
            assert path.read_text() == text, f"{path} is stale: run `netpilot strimzi render`"


def test_overlays_cover_every_workload() -> None:
    built = {
        d["metadata"]["labels"]["app.kubernetes.io/name"]
        for o in OVERLAYS
        for d in kustomize.build(o)
        if d["kind"] == "Deployment"
    }
    assert built == {w.name for w in WORKLOADS}


def test_every_object_passes_the_kubernetes_schemas(overlay) -> None:
    _, docs = overlay
    assert {d["kind"] for d in docs} == {"ConfigMap", "Deployment", "Service"}
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_schema_validation_is_strict_and_readable(overlay) -> None:
    _, docs = overlay
    deployment = copy.deepcopy(next(d for d in docs if d["kind"] == "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError, match="imagePullPolicyy"):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)
    deployment = copy.deepcopy(next(d for d in docs if d["kind"] == "Deployment"))
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError, match="'two' is not of type"):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def _secret_refs(pod: dict) -> set[tuple[str, str]]:
    refs = set()
    for c in pod["containers"]:
        for env in c.get("env", ()):
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                refs.add((ref["name"], ref["key"]))
        for src in c.get("envFrom", ()):
            if "secretRef" in src:
                refs.add((src["secretRef"]["name"], "*"))
    for vol in pod.get("volumes", ()):
        if "secret" in vol:
            for item in vol["secret"]["items"]:
                refs.add((vol["secret"]["secretName"], item["key"]))
    return refs


def test_deployments_use_their_kafkausers_secret_and_listener(overlay) -> None:
    path, docs = overlay
    users, cluster = kafka_users(), kafka_cluster()
    namespace = yaml.safe_load((path / "kustomization.yaml").read_text())["namespace"]
    ca_secret = f"{cluster['metadata']['name']}-cluster-ca-cert"
    listeners = {l["authentication"]["type"]: l["port"] for l in cluster["spec"]["kafka"]["listeners"]}
    for dep in (d for d in docs if d["kind"] == "Deployment"):
        user_name = dep["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
        user = users[user_name]
        # Secrets are namespace-local: the Deployment must run where Strimzi puts them.
        assert user["metadata"]["namespace"] == dep["metadata"]["namespace"] == namespace
        pod = dep["spec"]["template"]["spec"]
        env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
        auth = user["spec"]["authentication"]["type"]
        expected_keys = {("password",)} if auth == "scram-sha-512" else {("user.crt",), ("user.key",)}
        refs = _secret_refs(pod)
        assert {(k,) for s, k in refs if s == user_name} == expected_keys, dep["metadata"]["name"]
        assert (ca_secret, "ca.crt") in refs
        assert {s for s, _ in refs} <= {user_name, ca_secret} | SITE_SECRETS, refs
        assert env["NETPILOT_KAFKA__BOOTSTRAP_SERVERS"].endswith(f":{listeners[auth]}")
        protocol = "SSL" if auth == "tls" else "SASL_SSL"
        assert env["NETPILOT_KAFKA__SECURITY_PROTOCOL"] == protocol


class _AnyComponent(ComponentSettings):
    COMPONENT = "deploy-test"


def test_deployment_env_loads_into_netpilot_settings(overlay, monkeypatch) -> None:
    """The NETPILOT_* variables are real settings: load them with the project's loader."""
    _, docs = overlay
    for dep in (d for d in docs if d["kind"] == "Deployment"):
        with monkeypatch.context() as m:
            for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]:
                if e["name"].startswith(("NETPILOT_KAFKA__", "NETPILOT_METRICS__", "NETPILOT_LOG__")):
                    m.setenv(e["name"], e.get("value") or "secret-from-kubernetes")
            settings = load_settings(_AnyComponent)
            cfg = settings.kafka.client_config()
        assert cfg["ssl.ca.location"] == "/etc/netpilot/kafka-ca/ca.crt"
        assert settings.metrics.listen == "0.0.0.0:9464"
        if cfg["security.protocol"] == "SASL_SSL":
            assert cfg["sasl.mechanism"] == "SCRAM-SHA-512"
            assert cfg["sasl.username"] == dep["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
        else:
            assert cfg["ssl.certificate.location"].endswith("/user.crt")


def test_every_deployment_has_a_metrics_service(overlay) -> None:
    _, docs = overlay
    services = [d for d in docs if d["kind"] == "Service"]
    for dep in (d for d in docs if d["kind"] == "Deployment"):
        labels = dep["spec"]["template"]["metadata"]["labels"]
        container = dep["spec"]["template"]["spec"]["containers"][0]
        assert {"name": "metrics", "containerPort": 9464, "protocol": "TCP"} in container["ports"]
        assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
        matching = [
            s
            for s in services
            if s["spec"]["selector"].items() <= labels.items()
            and any(p["targetPort"] == "metrics" for p in s["spec"]["ports"])
        ]
        assert len(matching) == 1, dep["metadata"]["name"]


@pytest.mark.slow  # kustomize (built with Go on first use)
def test_pop_overlay_config_is_netpilot_config(tmp_path) -> None:
    """The PoP overlay's netpilot.yaml and inventory load with the components' own loaders."""
    from producers.inventory.load import load_inventory
    from producers.linkstats.settings import SnmpPollerSettings

    docs = kustomize.build(DEPLOY_DIR / "overlays" / "pop-ams1")
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    for name, text in config["data"].items():
        (tmp_path / name).write_text(text)
    settings = load_settings(SnmpPollerSettings, tmp_path / "netpilot.yaml")
    assert str(settings.inventory) == "/etc/netpilot/inventory.yaml"
    inventory = load_inventory(tmp_path / "inventory.yaml")
    assert inventory is not None
    pods = [d for d in docs if d["kind"] == "Deployment"]
    assert all(d["metadata"]["name"].endswith("-ams1") for d in pods)
    assert all(d["spec"]["selector"]["matchLabels"]["netpilot.io/pop"] == "ams1" for d in pods)


@pytest.mark.slow  # kustomize (built with Go on first use)
def test_central_overlay_config_is_netpilot_config(tmp_path) -> None:
    from streams.settings import StreamsSettings

    docs = kustomize.build(DEPLOY_DIR / "overlays" / "central")
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    (tmp_path / "netpilot.yaml").write_text(config["data"]["netpilot.yaml"])
    settings = load_settings(StreamsSettings, tmp_path / "netpilot.yaml")
    assert settings.changelog_replication == 3
    assert settings.app_id == "netpilot-streams"  # = the KafkaUser's Faust ACL prefix
