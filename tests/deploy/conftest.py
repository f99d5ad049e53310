from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import gotools
from tests.strimzi import kube_apiserver


@pytest.fixture(scope="session")
def k8s_apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kube_apiserver.KubeApiServer]:
    """The upstream kube-apiserver (tools/kube-apiserver-full) + etcd on 127.0.0.1, serving
    the built-in APIs and the Strimzi 1.2.0 CRDs, with the namespace ``kafka``."""
    server = kube_apiserver.start(tmp_path_factory.mktemp("k8s-apiserver"), source=gotools.KUBE_APISERVER_FULL)
    try:
        _prepare(server)
        yield server
    finally:
        server.stop()


def _prepare(server: kube_apiserver.KubeApiServer) -> None:
    from kubernetes import client, config

    api = config.new_client_from_config(str(server.kubeconfig))
    client.CoreV1Api(api).create_namespace({"metadata": {"name": "kafka"}})
    kube_apiserver.install_strimzi_crds(server)
