"""Build (once, cached) and run tools/kube-apiserver: a real apiextensions-apiserver with
embedded etcd, for testing ``netpilot strimzi apply``.

The binary is cached as ``~/.cache/netpilot/kube-apiserver-<hash>`` where the hash covers
go.mod, go.sum and the Go sources, so an edit rebuilds and an unchanged tree never does.
A cold build (empty Go build cache; compile of k8s.io/apiserver, apiextensions and etcd)
costs about 230-270 s of CPU and 1.6 GB peak RSS: 3m14s wall on this 2-core machine when
quiet, 7m34s when shared with other jobs (measured 2026-11-26; the module download adds
~10 s). A cached start takes ~2 s.
Override the cache directory with NETPILOT_CACHE_DIR.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "tools" / "kube-apiserver"
BUILD_TIMEOUT_S = 900


def cache_dir() -> Path:
    return Path(os.environ.get("NETPILOT_CACHE_DIR", Path.home() / ".cache" / "netpilot"))


def binary_path() -> Path:
    digest = hashlib.sha256()
    for path in sorted(SOURCE.glob("*")):
        if path.suffix in (".go", ".mod", ".sum"):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return cache_dir() / f"kube-apiserver-{digest.hexdigest()[:12]}"


def build() -> Path:
    """The cached binary, building it first if needed (prints how long a build took)."""
    target = binary_path()
    if target.exists():
        return target
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("`go` is not on PATH: Go 1.26 is needed to build tools/kube-apiserver")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    started = time.monotonic()
    proc = subprocess.run(
        [go, "build", "-o", str(tmp), "."], cwd=SOURCE, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S
    )
    if proc.returncode != 0:
        raise RuntimeError(f"go build of {SOURCE} failed:\n{proc.stderr[-4000:]}")
    tmp.rename(target)
    print(f"built {target.name} in {time.monotonic() - started:.0f}s", file=sys.stderr)
    return target


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
    # The binary prints one line, "READY <url>", once /healthz answers 200; it gives up
    # (and exits, closing stdout) after 120 s by itself, so this read cannot hang forever.
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        server.stop()
        tail = (data_dir / "server.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"kube-apiserver did not start (exit {proc.poll()}):\n{tail}")
    server.url = line.split()[1]
    return server
