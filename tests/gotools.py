"""The Go programs the tests run, built from the Go module proxy once and cached under
``~/.cache/netpilot`` (``NETPILOT_CACHE_DIR`` overrides it): no Debian package ships them, and
nothing prebuilt may be downloaded.

- ``helm``: upstream Helm 4 (``go install helm.sh/helm/v4/cmd/helm@VERSION``), cached as
  ``helm-<version>/helm``;
- ``crane``: go-containerregistry's image tool, which ``make image`` assembles and pushes the
  container image with (no container engine needed), cached as ``crane-<version>/crane``;
- ``tools/kube-apiserver`` (the upstream kube-apiserver on an embedded etcd): ``go build``
  of the project's own sources, cached as
  ``<name>-<hash of go.mod, go.sum and the Go files>``, so an edit rebuilds and an unchanged
  tree never does.

``python -m tests.gotools`` builds all of them; ``make test`` runs it before pytest so that
no test pays a cold build (minutes on 2 cores) inside its timeout. A fixture that finds a
binary missing builds it the same way.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HELM_MODULE = "helm.sh/helm/v4/cmd/helm"
# The newest Helm 4 the Go module proxy serves that builds with Go 1.26.
HELM_VERSION = "v4.3.2"
CRANE_MODULE = "github.com/google/go-containerregistry/cmd/crane"
CRANE_VERSION = "v0.22.1"
BUILD_TIMEOUT_S = 1800


def cache_dir() -> Path:
    return Path(os.environ.get("NETPILOT_CACHE_DIR", Path.home() / ".cache" / "netpilot"))


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("`go` is not on PATH: Go 1.26 is needed to build the test tools (see docs/development.md)")
    return go


def _report(what: str, started: float) -> None:
    print(f"built {what} in {time.monotonic() - started:.0f}s", file=sys.stderr)


def go_install(module: str, version: str, name: str) -> Path:
    """``go install module@version`` into the cache, once."""
    target_dir = cache_dir() / f"{name}-{version}"
    target = target_dir / Path(module).name
    if target.exists():
        return target
    started = time.monotonic()
    tmp_dir = target_dir.with_name(target_dir.name + ".tmp")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    proc = subprocess.run(
        [_go(), "install", f"{module}@{version}"],
        env={**os.environ, "GOBIN": str(tmp_dir)},
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"go install {module}@{version} failed:\n{proc.stderr[-3000:]}")
    target_dir.mkdir(parents=True, exist_ok=True)
    (tmp_dir / target.name).rename(target)  # atomic: a concurrent reader sees all or nothing
    shutil.rmtree(tmp_dir, ignore_errors=True)
    _report(f"{name} {version}", started)
    return target


def source_binary_path(source: Path, ldflags: str = "") -> Path:
    digest = hashlib.sha256(ldflags.encode())
    for path in sorted(source.glob("*")):
        if path.suffix in (".go", ".mod", ".sum"):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return cache_dir() / f"{source.name}-{digest.hexdigest()[:12]}"


def go_build(source: Path, ldflags: str = "") -> Path:
    """``go build`` of a main package in this repository, cached by the hash of its sources
    (and of ``ldflags``)."""
    if source == KUBE_APISERVER and not ldflags:
        ldflags = kube_apiserver_ldflags()
    target = source_binary_path(source, ldflags)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    started = time.monotonic()
    proc = subprocess.run(
        [_go(), "build", *(["-ldflags", ldflags] if ldflags else []), "-o", str(tmp), "."],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"go build of {source} failed:\n{proc.stderr[-4000:]}")
    tmp.rename(target)
    _report(target.name, started)
    return target


def helm() -> Path:
    return go_install(HELM_MODULE, HELM_VERSION, "helm")


def crane() -> Path:
    return go_install(CRANE_MODULE, CRANE_VERSION, "crane")


KUBE_APISERVER = REPO / "tools" / "kube-apiserver"


def kube_apiserver_ldflags() -> str:
    """What an upstream release build stamps in: without it the server reports v0.0.0-master
    and Helm refuses a chart's kubeVersion range against it. The version is go.mod's."""
    import re

    gomod = (KUBE_APISERVER / "go.mod").read_text()
    match = re.search(r"^\s*k8s\.io/kubernetes v(\d+)\.(\d+)\.(\d+)$", gomod, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no k8s.io/kubernetes version in {KUBE_APISERVER}/go.mod")
    major, minor, _ = match.groups()
    values = {"gitVersion": "v" + ".".join(match.groups()), "gitMajor": major, "gitMinor": minor}
    return " ".join(f"-X k8s.io/component-base/version.{k}={v}" for k, v in values.items())


def build_all() -> list[Path]:
    # One at a time: each build already uses every core.
    return [helm(), crane(), go_build(KUBE_APISERVER)]


if __name__ == "__main__":
    for path in build_all():
        print(path)
