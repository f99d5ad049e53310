from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.strimzi import kube_apiserver


@pytest.fixture
def bare_apiserver(tmp_path: Path) -> Iterator[kube_apiserver.KubeApiServer]:
    """A real apiextensions-apiserver + etcd on 127.0.0.1 with no CRDs at all."""
    server = kube_apiserver.start(tmp_path / "kube-apiserver")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def strimzi_apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kube_apiserver.KubeApiServer]:
    """A real API server serving the Strimzi 1.2.0 CRDs (created and Established)."""
    server = kube_apiserver.start(tmp_path_factory.mktemp("kube-apiserver"))
    try:
        _install_crds(server)
        yield server
    finally:
        server.stop()


def _install_crds(server: kube_apiserver.KubeApiServer) -> None:
    from kubernetes import client, config

    from strimzi.crds import crds_dir

    ext = client.ApiextensionsV1Api(config.new_client_from_config(str(server.kubeconfig)))
    pending = set()
    for path in sorted(crds_dir().glob("*Crd*.yaml")):
        doc = yaml.safe_load(path.read_text())
        ext.create_custom_resource_definition(doc)
        pending.add(doc["metadata"]["name"])
    deadline = time.monotonic() + 60
    while pending and time.monotonic() < deadline:
        for name in list(pending):
            crd = ext.read_custom_resource_definition(name)
            if any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or ()):
                pending.discard(name)
        time.sleep(0.2)
    assert not pending, f"CRDs not Established after 60s: {pending}"


@pytest.fixture
def manifests_dir() -> Path:
    from strimzi.render import MANIFESTS_DIR

    return MANIFESTS_DIR
