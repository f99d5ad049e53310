"""deploy/helm/netpilot: the chart lints, renders a central and two PoP releases from the
example values files, every object passes the Kubernetes 1.33 schemas (strict) or the
Strimzi 1.2.0 CRDs, each Deployment uses exactly the Secret and listener of its component's
KafkaUser, the settings it gets load with netpilot's own loaders, and a bad values file fails
with the schema's message. The server-side dry-run apply is in test_chart_apply.py."""

from __future__ import annotations

import copy
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from netpilot.settings import ComponentSettings, load_settings
from strimzi.deploy import CHART_DIR, WORKLOADS
from strimzi.render import RenderOptions, render_all
from strimzi.validate import validate_document
from tests.deploy import helm
from tests.deploy.helm import RELEASES

K8S_VERSION = "1.33.0"
# Every test here runs helm (built with Go on first use: `make go-tools`).
pytestmark = pytest.mark.slow

STRIMZI_GROUP = "kafka.strimzi.io/v1"
SITE_SECRETS = {"netpilot-clickhouse", "netpilot-snmp-credentials"}


def render(release: str, *extra: str, namespace: str = "kafka") -> list[dict]:
    return helm.template_example(release, *extra, namespace=namespace)


@pytest.fixture(scope="module", params=sorted(RELEASES))
def chart(request: pytest.FixtureRequest) -> tuple[str, list[dict]]:
    """(release, the objects `helm template` renders for it)."""
    return request.param, render(request.param)


def of_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def test_helm_lint_is_clean_for_every_example() -> None:
    for release, (values, _) in RELEASES.items():
        args = ["lint", "--strict", str(CHART_DIR), "--namespace", "kafka"]
        for v in values:
            args += ["--values", str(v)]
        proc = helm.run(*args, check=False)
        assert proc.returncode == 0, f"{release}: {proc.stdout}{proc.stderr}"
        assert "0 chart(s) failed" in proc.stdout


def test_releases_cover_every_workload_once() -> None:
    deployed = [
        d["metadata"]["labels"]["app.kubernetes.io/component"]
        for release in ("netpilot", "netpilot-ams1")
        for d in of_kind(render(release), "Deployment")
    ]
    assert sorted(deployed) == sorted(w.key for w in WORKLOADS)


def test_every_object_passes_the_kubernetes_or_strimzi_schemas(chart) -> None:
    release, docs = chart
    kinds = {d["kind"] for d in docs}
    core = {"ConfigMap", "Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy"}
    strimzi = {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser"}
    assert kinds == (core | strimzi if release == "netpilot" else core)
    for doc in docs:
        if doc["apiVersion"] == STRIMZI_GROUP:
            result = validate_document(doc)
            assert result.ok, result.describe()
        else:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_schema_validation_is_strict_and_readable(chart) -> None:
    _, docs = chart
    deployment = copy.deepcopy(of_kind(docs, "Deployment")[0])
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError, match="imagePullPolicyy"):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_strimzi_crs_are_the_catalog_render_in_the_release_namespace() -> None:
    """The chart passes the rendered CRs through unchanged (numbers stay numbers), setting
    only the namespace and the cluster name of the release."""
    docs = render("netpilot", "--set", "kafka.cluster=edge", namespace="netops")
    crs = [d for d in docs if d["apiVersion"] == STRIMZI_GROUP]
    expected = [d for file in render_all(RenderOptions(cluster="edge", namespace="netops")).values() for d in file]
    key = lambda d: (d["kind"], d["metadata"]["name"])  # noqa: E731
    assert sorted(crs, key=key) == sorted(expected, key=key)
    kafka = next(d for d in crs if d["kind"] == "Kafka")
    assert kafka["spec"]["kafka"]["config"]["replica.fetch.max.bytes"] == 16 * 1024 * 1024
    assert not [d for d in render("netpilot", "--set", "strimzi.enabled=false") if d["apiVersion"] == STRIMZI_GROUP]


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


def _kafka_users() -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in render_all()["users.yaml"]}


def _workload(dep: dict):
    key = dep["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
    return next(w for w in WORKLOADS if w.key == key)


def test_deployments_use_their_kafkausers_secret_and_listener(chart) -> None:
    _, docs = chart
    users = _kafka_users()
    cluster = render_all()["kafka.yaml"][0]
    listeners = {l["authentication"]["type"]: l["port"] for l in cluster["spec"]["kafka"]["listeners"]}
    for dep in of_kind(docs, "Deployment"):
        w = _workload(dep)
        user = users[w.user]
        pod = dep["spec"]["template"]["spec"]
        env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
        auth = user["spec"]["authentication"]["type"]
        expected_keys = {("password",)} if auth == "scram-sha-512" else {("user.crt",), ("user.key",)}
        refs = _secret_refs(pod)
        assert {(k,) for s, k in refs if s == w.user} == expected_keys, dep["metadata"]["name"]
        assert ("netpilot-cluster-ca-cert", "ca.crt") in refs
        assert {s for s, _ in refs} <= {w.user, "netpilot-cluster-ca-cert"} | SITE_SECRETS, refs
        assert env["NETPILOT_KAFKA__BOOTSTRAP_SERVERS"] == f"netpilot-kafka-bootstrap.kafka.svc:{listeners[auth]}"
        assert env["NETPILOT_KAFKA__SECURITY_PROTOCOL"] == ("SSL" if auth == "tls" else "SASL_SSL")


def test_every_deployment_is_hardened_probed_and_scraped(chart) -> None:
    _, docs = chart
    for dep in of_kind(docs, "Deployment"):
        template = dep["spec"]["template"]
        pod, container = template["spec"], template["spec"]["containers"][0]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        assert pod["automountServiceAccountToken"] is False
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        # liveness must not restart a pod still starting (/healthz is 503 until then)
        startup = container["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 300
        assert {"name": "metrics", "containerPort": 9464, "protocol": "TCP"} in container["ports"]
        assert template["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
        assert template["metadata"]["annotations"]["prometheus.io/port"] == "9464"
        assert container["resources"]["requests"]["memory"] == container["resources"]["limits"]["memory"]
        writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
        w = _workload(dep)
        assert writable == {"/tmp"} | ({w.state_dir} if w.state_dir else set())


def _selects(selector: dict, labels: dict) -> bool:
    return selector.items() <= labels.items()


def test_every_deployment_has_its_service_pdb_and_network_policy(chart) -> None:
    _, docs = chart
    for dep in of_kind(docs, "Deployment"):
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert _selects(dep["spec"]["selector"]["matchLabels"], labels)
        metrics = [
            s
            for s in of_kind(docs, "Service")
            if _selects(s["spec"]["selector"], labels) and any(p["targetPort"] == "metrics" for p in s["spec"]["ports"])
        ]
        assert len(metrics) == 1, dep["metadata"]["name"]
        pdbs = [
            p for p in of_kind(docs, "PodDisruptionBudget") if _selects(p["spec"]["selector"]["matchLabels"], labels)
        ]
        assert len(pdbs) == 1 and pdbs[0]["spec"]["maxUnavailable"] == 1
        policies = [
            p for p in of_kind(docs, "NetworkPolicy") if _selects(p["spec"]["podSelector"]["matchLabels"], labels)
        ]
        assert len(policies) == 1, dep["metadata"]["name"]
        # Selectors never reach another release's or component's pods.
        others = [d for d in of_kind(docs, "Deployment") if d is not dep]
        for other in others:
            other_labels = other["spec"]["template"]["metadata"]["labels"]
            assert not _selects(policies[0]["spec"]["podSelector"]["matchLabels"], other_labels)


def test_network_policy_allows_only_exporters_udp_and_kafka_egress() -> None:
    docs = render("netpilot-ams1", "--set-json", 'networkPolicy.exporters=["192.0.2.0/24"]')
    policy = next(p for p in of_kind(docs, "NetworkPolicy") if p["metadata"]["name"] == "netpilot-collector-ams1")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    metrics_rule, flows_rule = policy["spec"]["ingress"]
    assert metrics_rule["ports"] == [{"protocol": "TCP", "port": 9464}]
    assert flows_rule["from"] == [{"ipBlock": {"cidr": "192.0.2.0/24"}}]
    assert flows_rule["ports"] == [{"protocol": "UDP", "port": 2055}, {"protocol": "UDP", "port": 6343}]
    dns, kafka = policy["spec"]["egress"]
    assert {p["port"] for p in dns["ports"]} == {53} and "to" not in dns
    assert kafka["to"] == [
        {"podSelector": {"matchLabels": {"strimzi.io/cluster": "netpilot", "strimzi.io/kind": "Kafka"}}}
    ]
    assert kafka["ports"] == [{"protocol": "TCP", "port": 9094}]  # the collector's mTLS listener


class _AnyComponent(ComponentSettings):
    COMPONENT = "deploy-test"


def test_deployment_env_loads_into_netpilot_settings(chart, monkeypatch) -> None:
    """The NETPILOT_* variables are real settings: load them with the project's loader."""
    _, docs = chart
    for dep in of_kind(docs, "Deployment"):
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
            assert cfg["sasl.username"] == _workload(dep).user
        else:
            assert cfg["ssl.certificate.location"].endswith("/user.crt")


def test_pop_config_is_netpilot_config(tmp_path) -> None:
    """The fra1 release's netpilot.yaml and inventory load with the components' own loaders."""
    from producers.collector.settings import CollectorSettings
    from producers.inventory.load import load_inventory
    from producers.linkstats.settings import SnmpPollerSettings
    from producers.routes.bmp.settings import BmpSettings

    docs = render("netpilot-fra1")
    (config,) = of_kind(docs, "ConfigMap")
    assert config["metadata"]["name"] == "netpilot-config-fra1"
    for name, text in config["data"].items():
        (tmp_path / name).write_text(text)
    assert load_settings(SnmpPollerSettings, tmp_path / "netpilot.yaml").inventory == Path(
        "/etc/netpilot/inventory.yaml"
    )
    assert load_settings(CollectorSettings, tmp_path / "netpilot.yaml").inventory_file == Path(
        "/etc/netpilot/inventory.yaml"
    )
    # (its default, a relative inventory.yaml, is not there in a pod: the BMP pod exited 2)
    assert load_settings(BmpSettings, tmp_path / "netpilot.yaml").inventory == Path("/etc/netpilot/inventory.yaml")
    assert "fra1" in {r.pop for r in load_inventory(tmp_path / "inventory.yaml").routers}
    for dep in of_kind(docs, "Deployment"):
        assert dep["metadata"]["name"].endswith("-fra1")
        assert dep["spec"]["template"]["metadata"]["labels"]["netpilot.io/pop"] == "fra1"
        sources = next(v for v in dep["spec"]["template"]["spec"]["volumes"] if v["name"] == "config")
        assert sources["projected"]["sources"] == [{"configMap": {"name": "netpilot-config-fra1"}}]


def test_pop_inventory_from_a_configmap() -> None:
    docs = render("netpilot-ams1")
    (config,) = of_kind(docs, "ConfigMap")
    assert set(config["data"]) == {"netpilot.yaml"}
    for dep in of_kind(docs, "Deployment"):
        volume = next(v for v in dep["spec"]["template"]["spec"]["volumes"] if v["name"] == "config")
        assert volume["projected"]["sources"][1]["configMap"] == {
            "name": "netpilot-inventory-ams1",
            "items": [{"key": "inventory.yaml", "path": "inventory.yaml"}],
        }


def test_central_config_is_netpilot_config(tmp_path) -> None:
    from sinks.bgp.settings import InjectorSettings
    from streams.settings import StreamsSettings

    (config,) = of_kind(render("netpilot"), "ConfigMap")
    (tmp_path / "netpilot.yaml").write_text(config["data"]["netpilot.yaml"])
    settings = load_settings(StreamsSettings, tmp_path / "netpilot.yaml")
    assert settings.changelog_replication == 3
    assert settings.app_id == "netpilot-streams"  # = the KafkaUser's Faust ACL prefix
    assert load_settings(InjectorSettings, tmp_path / "netpilot.yaml").mode == "observe"


def test_service_monitor_selects_every_metrics_service() -> None:
    docs = render("netpilot-ams1", "--set", "metrics.serviceMonitor.enabled=true")
    (monitor,) = of_kind(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    selected = [
        s
        for s in of_kind(docs, "Service")
        if _selects(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
    ]
    assert sorted(s["metadata"]["name"] for s in selected) == sorted(
        f"netpilot-{w.key}-ams1-metrics" for w in WORKLOADS if w.tier == "pop"
    )
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"pop": {"name": "AMS 1"}}, r"/pop/name.*does not match pattern"),
        ({"components": {"colector": {"enabled": True}}}, r"additional properties 'colector' not allowed"),
        ({"image": {"tag": 0.1}}, r"/image/tag.*got number, want string"),
        ({"networkPolicy": {"exporters": ["192.0.2.1"]}}, r"/networkPolicy/exporters/0.*does not match pattern"),
        ({"components": {"streams": {"enabled": True, "replicas": -1}}}, r"/components/streams/replicas.*minimum"),
    ],
)
def test_a_bad_values_file_fails_with_the_schemas_message(tmp_path, values, message) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(values))
    proc = helm.run(*helm.template_args("bad", [bad]), check=False)
    assert proc.returncode == 1
    assert "values don't meet the specifications of the schema" in proc.stderr
    import re

    assert re.search(message, proc.stderr), proc.stderr


def test_clickhouse_sink_is_a_static_member_under_its_pod_name(monkeypatch) -> None:
    """The sink's group_instance_id comes from the pod's name (downward API): kept when its
    container restarts in the pod, never shared by two pods; ``staticMembership: false``
    leaves it dynamic. The variable is the sink's real setting."""
    from sinks.clickhouse.settings import ClickHouseSinkSettings

    def sink_env(*extra: str) -> dict[str, dict]:
        (dep,) = [
            d
            for d in of_kind(render("netpilot", *extra), "Deployment")
            if d["metadata"]["labels"]["app.kubernetes.io/component"] == "sink-clickhouse"
        ]
        return {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}

    var = "NETPILOT_SINK_CLICKHOUSE__GROUP_INSTANCE_ID"
    assert sink_env()[var]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert var not in sink_env("--set", "components.sink-clickhouse.staticMembership=false")
    monkeypatch.setenv(var, "netpilot-sink-clickhouse-7d9f8b-xk2pq")  # what the kubelet resolves
    assert load_settings(ClickHouseSinkSettings).group_instance_id == "netpilot-sink-clickhouse-7d9f8b-xk2pq"


def _container_env(docs: list[dict], name: str) -> list[dict]:
    dep = next(d for d in of_kind(docs, "Deployment") if d["metadata"]["name"] == name)
    return dep["spec"]["template"]["spec"]["containers"][0]["env"]


def test_faust_workers_are_static_members_named_after_their_pod(monkeypatch) -> None:
    """streams and the autopilot get their pod's name as group_instance_id (a container
    restarted in its pod rejoins as the same member); no other workload does, and
    ``staticMembership: false`` turns it off."""
    from streams.autopilot.settings import AutopilotSettings
    from streams.settings import StreamsSettings

    docs = render("netpilot")
    loaders = {"streams": StreamsSettings, "autopilot": AutopilotSettings}
    other_static = {"sink-clickhouse"}  # its own test above
    for dep in of_kind(docs, "Deployment"):
        w = _workload(dep)
        by_pod = [
            e
            for e in _container_env(docs, dep["metadata"]["name"])
            if "valueFrom" in e and "fieldRef" in e["valueFrom"]
        ]
        if w.key in other_static:
            continue
        if w.key not in loaders:
            assert by_pod == [], w.key
            continue
        assert by_pod == [
            {
                "name": f"NETPILOT_{w.key.upper()}__GROUP_INSTANCE_ID",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
            }
        ]
        # a Deployment's pod name (ReplicaSet hash, random suffix) is a valid instance id
        with monkeypatch.context() as m:
            m.setenv(by_pod[0]["name"], f"{dep['metadata']['name']}-7d9f8b6c5d-x2x9q")
            assert load_settings(loaders[w.key]).group_instance_id == f"{dep['metadata']['name']}-7d9f8b6c5d-x2x9q"
    off = render("netpilot", "--set", "components.streams.staticMembership=false")
    assert not any("GROUP_INSTANCE_ID" in e["name"] for e in _container_env(off, "netpilot-streams"))
    assert any("GROUP_INSTANCE_ID" in e["name"] for e in _container_env(off, "netpilot-autopilot"))
