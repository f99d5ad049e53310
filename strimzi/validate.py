"""Validate Strimzi CRs offline against the Strimzi 1.2.0 CRDs.

What the API server would check on ``kubectl apply --validate=strict``, and that can be
checked without a cluster:

- ``apiVersion``/``kind`` name a CRD and a *served* version (Strimzi 1.x serves only
  ``kafka.strimzi.io/v1``; ``v1beta2`` is refused with that hint);
- ``metadata``: name present and a DNS-1123 subdomain, namespace a DNS-1123 label, labels and
  annotations string maps, no unknown metadata fields;
- ``spec``/``status`` against the version's OpenAPI v3 schema with unknown fields rejected,
  and every CEL rule (:mod:`strimzi.schema`, :mod:`strimzi.cel`).

Use :func:`validate_document` for one CR, :func:`validate_files` for YAML files
(``netpilot strimzi validate FILE...``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from strimzi.crds import load_crds
from strimzi.errors import CrInvalidError
from strimzi.schema import validate as validate_schema

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_META_FIELDS = {
    "name",
    "namespace",
    "labels",
    "annotations",
    "generateName",
    "finalizers",
    "ownerReferences",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
}


@dataclass(frozen=True)
class Result:
    """Problems found in one document (empty = valid)."""

    source: str
    kind: str
    name: str
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def describe(self) -> str:
        head = f"{self.source}: {self.kind}/{self.name}"
        if self.ok:
            return f"{head}: valid"
        return "\n".join([f"{head}: {len(self.problems)} problem(s)"] + [f"  - {p}" for p in self.problems])


def validate_document(doc: object, source: str = "<document>") -> Result:
    if not isinstance(doc, dict):
        return Result(source, "?", "?", (f"expected a mapping, got {type(doc).__name__}",))
    kind = str(doc.get("kind", "?"))
    name = str((doc.get("metadata") or {}).get("name", "?")) if isinstance(doc.get("metadata"), dict) else "?"
    problems: list[str] = []
    version_schema = _find_version(doc, problems)
    if version_schema is not None:
        _check_metadata(doc.get("metadata"), problems)
        schema = version_schema.schema
        for key, value in doc.items():
            if key in ("apiVersion", "kind", "metadata"):
                continue
            sub = (schema.get("properties") or {}).get(key)
            if sub is None:
                problems.append(f'{key}: unknown field "{key}"')
            else:
                validate_schema(value, sub, key, problems)
        for key in schema.get("required") or ():
            if key not in doc:
                problems.append(f"{key}: Required value")
    return Result(source, kind, name, tuple(problems))


def _find_version(doc: dict, problems: list[str]):
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if not isinstance(api_version, str) or "/" not in api_version:
        problems.append(f"apiVersion: Required value: expected <group>/<version>, got {api_version!r}")
        return None
    if not isinstance(kind, str) or not kind:
        problems.append("kind: Required value")
        return None
    group, version = api_version.split("/", 1)
    crd = load_crds().get((group, kind))
    if crd is None:
        known = sorted(k for g, k in load_crds() if g == group)
        hint = f"; kinds in {group}: {', '.join(known)}" if known else ""
        problems.append(f"kind: no CRD for {kind} in API group {group!r}{hint}")
        return None
    cv = crd.versions.get(version)
    if cv is None or not cv.served:
        served = ", ".join(f"{group}/{v}" for v in crd.served_versions())
        problems.append(
            f"apiVersion: {api_version} is not served for {kind} by the Strimzi "
            f"1.2.0 CRDs (served: {served}); Strimzi 1.x removed v1beta2, "
            f"convert the resource to {served}"
        )
        return None
    return cv


def _check_metadata(meta: object, problems: list[str]) -> None:
    if not isinstance(meta, dict):
        problems.append("metadata: Required value: must be an object with a name")
        return
    for key in meta:
        if key not in _META_FIELDS:
            problems.append(f'metadata.{key}: unknown field "metadata.{key}"')
    name = meta.get("name")
    if not name:
        problems.append("metadata.name: Required value: name is required")
    elif not isinstance(name, str) or len(name) > 253 or not _SUBDOMAIN.match(name):
        problems.append(
            f"metadata.name: Invalid value: {name!r}: a lowercase RFC 1123 "
            "subdomain must consist of lower case alphanumeric characters, "
            "'-' or '.', and must start and end with an alphanumeric character"
        )
    namespace = meta.get("namespace")
    if namespace is not None and (not isinstance(namespace, str) or len(namespace) > 63 or not _LABEL.match(namespace)):
        problems.append(f"metadata.namespace: Invalid value: {namespace!r}: must be a lowercase RFC 1123 label")
    for field in ("labels", "annotations"):
        value = meta.get(field)
        if value is None:
            continue
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            problems.append(
                f"metadata.{field}: Invalid value: must be a map of string to string (quote numbers and booleans)"
            )


def load_documents(path: Path) -> list[object]:
    try:
        return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except yaml.YAMLError as exc:
        raise CrInvalidError([f"{path}: not valid YAML: {exc}"]) from exc


def validate_files(paths: list[Path]) -> list[Result]:
    """Every CR in every file; Kustomization files (not CRs) are skipped."""
    results = []
    for path in paths:
        for i, doc in enumerate(load_documents(path)):
            if isinstance(doc, dict) and doc.get("kind") == "Kustomization":
                continue
            results.append(validate_document(doc, f"{path}[{i}]"))
    return results


def check(docs: Sequence[object]) -> None:
    """Raise :class:`CrInvalidError` listing every problem in ``docs``."""
    problems: list[str] = []
    for doc in docs:
        result = validate_document(doc)
        problems.extend(f"{result.kind}/{result.name}: {p}" for p in result.problems)
    if problems:
        raise CrInvalidError(problems)
