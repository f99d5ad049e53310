from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.strimzi import kube_apiserver

# the namespaces the tests render into: the real API server refuses objects in a namespace
# that does not exist (NamespaceLifecycle admission), as a cluster would
NAMESPACES = ("kafka", "broken", "wait", "timeout")


@pytest.fixture
def bare_apiserver(tmp_path: Path) -> Iterator[kube_apiserver.KubeApiServer]:
    """A real kube-apiserver + etcd on 127.0.0.1 with no CRDs at all."""
    server = kube_apiserver.start(tmp_path / "kube-apiserver")
    try:
        kube_apiserver.create_namespaces(server, NAMESPACES)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def strimzi_apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kube_apiserver.KubeApiServer]:
    """A real API server serving the Strimzi 1.2.0 CRDs (created and Established)."""
    server = kube_apiserver.start(tmp_path_factory.mktemp("kube-apiserver"))
    try:
        kube_apiserver.create_namespaces(server, NAMESPACES)
        kube_apiserver.install_strimzi_crds(server)
        yield server
    finally:
        server.stop()


@pytest.fixture
def manifests_dir() -> Path:
    from strimzi.render import MANIFESTS_DIR

    return MANIFESTS_DIR
