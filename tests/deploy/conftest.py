from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.image import build
from tests.deploy import pod
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


@pytest.fixture(scope="session")
def container_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[build.Image]:
    """The image `make image` builds (deploy/image/build.py), as a tarball in a temp dir; its
    layers are cached in ~/.cache/netpilot, so only a changed project rebuilds them."""
    out = tmp_path_factory.mktemp("image")
    try:
        yield build.build(out)
    finally:
        shutil.rmtree(out, ignore_errors=True)


@pytest.fixture(scope="session")
def image_rootfs(container_image: build.Image, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The image's layers unpacked (owners and modes kept): the root filesystem to run in."""
    root = tmp_path_factory.mktemp("image-rootfs")
    try:
        pod.extract_layers(container_image.path, root)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)  # about 2 GB: not left for pytest's tmp rotation
