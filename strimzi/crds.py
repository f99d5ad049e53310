"""The Strimzi CRDs netpilot validates against (Strimzi 1.2.0, read-only).

Where they are: ``$NETPILOT_STRIMZI_CRDS`` if set, else the copy vendored in this package
(``strimzi/crds/``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from netpilot.errors import ConfigError

ENV_VAR = "NETPILOT_STRIMZI_CRDS"

VENDORED_CRDS = Path(__file__).resolve().parent / "crds"
"""A verbatim copy of the Strimzi 1.2.0 CRDs (see crds/SOURCE.txt), so a clone works on its
own; a test checks each file against the upstream git blob id that SOURCE.txt records."""


def crds_dir() -> Path:
    override = os.environ.get(ENV_VAR)
    path = Path(override) if override else VENDORED_CRDS
    if not path.is_dir():
        raise ConfigError(
            f"Strimzi CRDs not found at {path}; set {ENV_VAR} to the directory "
            "holding the 04x-Crd-*.yaml files of Strimzi 1.2.0"
        )
    return path


@dataclass(frozen=True)
class CrdVersion:
    group: str
    kind: str
    plural: str
    version: str
    served: bool
    namespaced: bool
    schema: dict
    status_subresource: bool


@dataclass(frozen=True)
class Crd:
    name: str
    group: str
    kind: str
    plural: str
    versions: dict[str, CrdVersion]
    document: dict
    """The CRD object as loaded, for applying it to a cluster."""

    def served_versions(self) -> list[str]:
        return [v for v, cv in self.versions.items() if cv.served]


def _parse(doc: dict) -> Crd:
    spec = doc["spec"]
    names = spec["names"]
    versions = {}
    for v in spec["versions"]:
        versions[v["name"]] = CrdVersion(
            group=spec["group"],
            kind=names["kind"],
            plural=names["plural"],
            version=v["name"],
            served=bool(v.get("served")),
            namespaced=spec.get("scope") == "Namespaced",
            schema=v["schema"]["openAPIV3Schema"],
            status_subresource="status" in (v.get("subresources") or {}),
        )
    return Crd(doc["metadata"]["name"], spec["group"], names["kind"], names["plural"], versions, doc)


@cache
def load_crds(directory: Path | None = None) -> dict[tuple[str, str], Crd]:
    """(group, kind) -> CRD, from every ``*Crd*.yaml`` in the directory."""
    directory = directory or crds_dir()
    crds: dict[tuple[str, str], Crd] = {}
    for path in sorted(directory.glob("*Crd*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                crd = _parse(doc)
                crds[(crd.group, crd.kind)] = crd
    if not crds:
        raise ConfigError(f"no CustomResourceDefinition found in {directory}")
    return crds
