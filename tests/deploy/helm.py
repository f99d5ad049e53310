"""A real ``helm`` for the tests: upstream Helm 4 built from the Go module proxy and cached by
:mod:`tests.gotools` (``~/.cache/netpilot/helm-<version>/helm``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from strimzi.deploy import CHART_DIR
from tests import gotools

EXAMPLES = gotools.REPO / "examples" / "helm"
RELEASES: dict[str, tuple[list[Path], dict[str, Path]]] = {
    "netpilot": ([EXAMPLES / "central.yaml"], {}),
    "netpilot-ams1": ([EXAMPLES / "pop-ams1.yaml"], {}),
    "netpilot-fra1": (
        [EXAMPLES / "pop-fra1.yaml"],
        {"pop.inventory.yaml": gotools.REPO / "examples" / "inventory.yaml"},
    ),
}
"""The example releases the tests render: name -> (values files, ``--set-file`` values)."""


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(gotools.helm()), *args], capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise RuntimeError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def template_args(
    release: str, values: list[Path], namespace: str = "kafka", set_files: dict[str, Path] | None = None
) -> list[str]:
    args = ["template", release, str(CHART_DIR), "--namespace", namespace]
    for v in values:
        args += ["--values", str(v)]
    for key, path in (set_files or {}).items():
        args += ["--set-file", f"{key}={path}"]
    return args


def template(
    release: str,
    values: list[Path],
    namespace: str = "kafka",
    set_files: dict[str, Path] | None = None,
    extra: tuple[str, ...] = (),
) -> list[dict]:
    """``helm template`` -> the rendered objects."""
    proc = run(*template_args(release, values, namespace, set_files), *extra)
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def template_example(release: str, *extra: str, namespace: str = "kafka") -> list[dict]:
    values, set_files = RELEASES[release]
    return template(release, values, namespace, set_files, extra)
