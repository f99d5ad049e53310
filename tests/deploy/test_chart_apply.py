"""The chart's objects, server-side applied with dryRun=All and fieldValidation=Strict to a
real kube-apiserver (tools/kube-apiserver: built-in APIs and the Strimzi 1.2.0 CRDs):
what `helm install` would send is accepted by a cluster's own validation and admission, and
a broken object is refused with the server's message. And `helm install` itself works there."""

from __future__ import annotations

import copy
import json

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient

from netpilot import catalog
from strimzi.deploy import CHART_DIR, WORKLOADS
from tests.deploy import helm
from tests.deploy.helm import RELEASES
from tests.strimzi.kube_apiserver import KubeApiServer


class DryRunApplier:
    """Server-side apply (dryRun=All, Strict) of arbitrary objects, resolving each kind's
    resource path by discovery as kubectl does."""

    def __init__(self, server: KubeApiServer) -> None:
        self.api = config.new_client_from_config(str(server.kubeconfig))
        self.dynamic = DynamicClient(self.api)

    def apply(self, doc: dict, namespace: str = "kafka") -> dict:
        resource = self.dynamic.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        path = resource.path(name=doc["metadata"]["name"], namespace=namespace if resource.namespaced else None)
        request = self.api.param_serialize(
            "PATCH",
            path,
            query_params=[
                ("dryRun", "All"),
                ("fieldManager", "helm"),
                ("fieldValidation", "Strict"),
                ("force", "true"),
            ],
            header_params={"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"},
            body=doc,
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(*request)
        response.read()
        if not 200 <= response.status <= 299:
            raise ApiException(http_resp=response)
        return json.loads(response.data)


def server_message(exc: ApiException) -> str:
    try:
        return json.loads(exc.body)["message"]
    except (TypeError, ValueError, KeyError):
        return str(exc.body)


@pytest.fixture(scope="module")
def applier(k8s_apiserver: KubeApiServer) -> DryRunApplier:
    return DryRunApplier(k8s_apiserver)


@pytest.mark.parametrize("release", sorted(RELEASES))
def test_every_object_is_accepted_by_the_api_server(applier: DryRunApplier, release: str) -> None:
    docs = helm.template_example(release)
    kinds = set()
    for doc in docs:
        try:
            applied = applier.apply(doc)
        except ApiException as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {exc.status} {server_message(exc)}")
        # The server defaulted and returned the object: it went through the real code path.
        assert applied["metadata"]["name"] == doc["metadata"]["name"]
        assert applied["metadata"]["namespace"] == "kafka"
        kinds.add(doc["kind"])
    assert {"Deployment", "Service", "NetworkPolicy", "PodDisruptionBudget", "ConfigMap"} <= kinds
    # dryRun=All persisted nothing.
    apps = client.AppsV1Api(applier.api)
    assert apps.list_namespaced_deployment("kafka").items == []


def test_the_server_refuses_a_broken_deployment_with_its_message(applier: DryRunApplier) -> None:
    docs = helm.template_example("netpilot-ams1")
    deployment = copy.deepcopy(next(d for d in docs if d["kind"] == "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = 70000
    with pytest.raises(ApiException) as info:
        applier.apply(deployment)
    assert info.value.status == 422
    assert "containerPort: Invalid value: 70000: must be between 1 and 65535" in server_message(info.value)
    policy = copy.deepcopy(next(d for d in docs if d["kind"] == "NetworkPolicy"))
    policy["spec"]["ingress"][0]["ports"][0]["protocoll"] = "UDP"
    with pytest.raises(ApiException) as info:
        applier.apply(policy)
    assert 'unknown field "spec.ingress[0].ports[0].protocoll"' in server_message(info.value) or (
        "protocoll: field not declared in schema" in server_message(info.value)
    )


def test_helm_install_and_uninstall_on_the_api_server(k8s_apiserver: KubeApiServer) -> None:
    """`helm install` itself (Helm 4: server-side apply) of a central and a PoP release, then
    `helm uninstall`: the objects appear with their names and go again."""
    api = config.new_client_from_config(str(k8s_apiserver.kubeconfig))
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    core.create_namespace({"metadata": {"name": "netops"}})
    kube = ("--kubeconfig", str(k8s_apiserver.kubeconfig), "--namespace", "netops")
    for release, (values, set_files) in RELEASES.items():
        if release == "netpilot-fra1":
            continue
        args = ["install", release, str(CHART_DIR), *kube]
        for v in values:
            args += ["--values", str(v)]
        for key, path in set_files.items():
            args += ["--set-file", f"{key}={path}"]
        helm.run(*args)
    names = {d.metadata.name for d in apps.list_namespaced_deployment("netops").items}
    assert names == {f"netpilot-{w.key}" for w in WORKLOADS if w.tier == "core"} | {
        f"netpilot-{w.key}-ams1" for w in WORKLOADS if w.tier == "pop"
    }
    topics = client.CustomObjectsApi(api).list_namespaced_custom_object(
        "kafka.strimzi.io", "v1", "netops", "kafkatopics"
    )
    assert {t["spec"]["topicName"] for t in topics["items"]} == {t.name for t in catalog.ALL_TOPICS}
    listed = helm.run("list", *kube, "--short").stdout.split()
    assert sorted(listed) == ["netpilot", "netpilot-ams1"]
    for release in listed:
        helm.run("uninstall", release, *kube)
    assert apps.list_namespaced_deployment("netops").items == []
