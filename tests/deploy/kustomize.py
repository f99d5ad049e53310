"""A real ``kustomize`` for the tests: upstream kustomize built from the Go module proxy and
cached as ``~/.cache/netpilot/kustomize-<version>/kustomize`` (no Debian package ships it;
kubectl is not installed in CI). A cold build took 50 s wall, 0.3 GB peak RSS here."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml

# v5.8.2+ need Go >= 1.27; the machine has Go 1.26.
VERSION = "v5.8.1"


def binary() -> Path:
    cache = Path(os.environ.get("NETPILOT_CACHE_DIR", Path.home() / ".cache" / "netpilot"))
    target_dir = cache / f"kustomize-{VERSION}"
    target = target_dir / "kustomize"
    if target.exists():
        return target
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("`go` is not on PATH: Go 1.26 is needed to build kustomize")
    proc = subprocess.run(
        [go, "install", f"sigs.k8s.io/kustomize/kustomize/v5@{VERSION}"],
        env={**os.environ, "GOBIN": str(target_dir)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"go install kustomize {VERSION} failed:\n{proc.stderr[-3000:]}")
    return target


def build(directory: Path) -> list[dict]:
    proc = subprocess.run([str(binary()), "build", str(directory)], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"kustomize build {directory} failed: {proc.stderr}")
    return [d for d in yaml.safe_load_all(proc.stdout) if d]
