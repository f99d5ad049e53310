"""Build (once, cached) and run a real Kubernetes API server on an embedded etcd:
tools/kube-apiserver, the upstream kube-apiserver 1.37 (built-in APIs and CRDs), for
``netpilot strimzi apply`` and the server-side dry-run apply of the Helm chart.

The binary is cached by :mod:`tests.gotools` as ``~/.cache/netpilot/kube-apiserver-<hash>``
where the hash covers go.mod, go.sum and the Go sources, so an edit rebuilds and an
unchanged tree never does; ``make test`` builds it before pytest (minutes on 2 cores when
the Go build cache is cold). Override the cache directory with NETPILOT_CACHE_DIR.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests import gotools


def build() -> Path:
    """The cached binary, building it first if needed (prints how long a build took)."""
    return gotools.go_build(gotools.KUBE_APISERVER)


@dataclass
class KubeApiServer:
    """A running server; ``kubeconfig`` is system:masters, ``anonymous_kubeconfig`` is not."""

    process: subprocess.Popen
    url: str
    data_dir: Path

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig"

    @property
    def anonymous_kubeconfig(self) -> Path:
        return self.data_dir / "anonymous.kubeconfig"

    @property
    def log(self) -> Path:
        return self.data_dir / "server.log"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process.stdout:
            self.process.stdout.close()


def start(data_dir: Path, attempts: int = 3) -> KubeApiServer:
    """Start the server; retried when a port it picked was taken in between (the binary
    chooses free ports for etcd and the API, and another process can grab one first)."""
    for attempt in range(1, attempts + 1):
        try:
            return _start_once(data_dir / f"try{attempt}")
        except RuntimeError as exc:
            if "address already in use" not in str(exc) or attempt == attempts:
                raise
    raise AssertionError("unreachable")


def _start_once(data_dir: Path) -> KubeApiServer:
    binary = build()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = open(data_dir / "server.log", "wb")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen([str(binary), "--data-dir", str(data_dir)], stdout=subprocess.PIPE, stderr=log, text=True)
    log.close()
    server = KubeApiServer(proc, "", data_dir)
    assert proc.stdout is not None
    # The binary prints one line, "READY <url>", once it is healthy; it gives up (and exits,
    # closing stdout) after 180 s by itself, so this read cannot
    # hang forever.
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        server.stop()
        tail = (data_dir / "server.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"kube-apiserver did not start (exit {proc.poll()}):\n{tail}")
    server.url = line.split()[1]
    return server


def create_namespaces(server: KubeApiServer, names: Iterable[str]) -> None:
    from kubernetes import client, config

    core = client.CoreV1Api(config.new_client_from_config(str(server.kubeconfig)))
    for name in names:
        core.create_namespace({"metadata": {"name": name}})


def install_strimzi_crds(server: KubeApiServer) -> None:
    """Create the Strimzi 1.2.0 CRDs and wait until each is Established."""
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
