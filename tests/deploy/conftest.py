from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.strimzi import kube_apiserver


@pytest.fixture(scope="session")
def k8s_apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kube_apiserver.KubeApiServer]:
    """The upstream kube-apiserver (tools/kube-apiserver) + etcd on 127.0.0.1, serving
    the built-in APIs and the Strimzi 1.2.0 CRDs, with the namespace ``kafka``."""
    server = kube_apiserver.start(tmp_path_factory.mktemp("k8s-apiserver"))
    try:
        _prepare(server)
        yield server
    finally:
        server.stop()


def _prepare(server: kube_apiserver.KubeApiServer) -> None:
    kube_apiserver.create_namespaces(server, ["kafka"])
    kube_apiserver.install_strimzi_crds(server)
