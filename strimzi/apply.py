"""Apply the rendered Strimzi CRs to a cluster with the official ``kubernetes`` client.

- Server-side apply (``application/apply-patch+yaml``), field manager ``netpilot``,
  ``force=True``: netpilot's manifests are the source of truth for the fields they set,
  so a conflicting manual edit is taken back (the operator only writes ``status``).
- ``fieldValidation=Strict``: an unknown field is an error, not a silently pruned field.
- ``dry_run=True`` sends ``dryRun=All``: every admission and validation stage runs on the
  server, nothing is persisted.
- ``wait_ready`` polls until each Kafka/KafkaTopic/KafkaUser reports ``Ready=True`` for its
  current generation, or raises :class:`NotReadyError` naming what is not ready and why.

Errors say what to do: a cluster without the Strimzi CRDs -> :class:`CrdsMissingError`;
403 -> :class:`ForbiddenError`; 422 (and the 500 the API server returns when server-side
apply cannot build a typed object: undeclared field, wrong type) ->
:class:`ServerInvalidError` with the server's message.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from strimzi.errors import ApplyError, CrdsMissingError, ForbiddenError, NotReadyError, ServerInvalidError

FIELD_MANAGER = "netpilot"
GROUP = "kafka.strimzi.io"
# Kinds that carry a Ready condition written by the Strimzi operators.
READY_KINDS = ("Kafka", "KafkaTopic", "KafkaUser")
INSTALL_HINT = (
    "install the Strimzi 1.2.0 operator (its CRDs) first, e.g. "
    "`kubectl create -f 'https://strimzi.io/install/latest?namespace=kafka'`"
)


@dataclass(frozen=True)
class Ref:
    """Where one CR lives."""

    api_version: str
    kind: str
    plural: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"


def api_client(kubeconfig: Path | None = None, context: str | None = None) -> client.ApiClient:
    """From a kubeconfig file (or ``$KUBECONFIG``/~/.kube/config), else in-cluster."""
    try:
        if kubeconfig is not None:
            return config.new_client_from_config(str(kubeconfig), context=context)
        try:
            return config.new_client_from_config(context=context)
        except config.ConfigException:
            config.load_incluster_config()
            return client.ApiClient()
    except config.ConfigException as exc:
        raise ApplyError(f"no usable Kubernetes credentials: {exc}") from exc


# Server-side apply converts the request to a typed object before validation; a field the
# schema does not declare, or a value of the wrong type, fails that step and the API server
# (1.35) answers 500 with this text instead of 422. It is still the CR that is invalid.
_TYPED_PATCH_ERROR = "failed to create typed patch object"


def _server_message(exc: ApiException) -> str:
    try:
        return json.loads(exc.body or "")["message"]
    except (TypeError, ValueError, KeyError):
        return exc.body or exc.reason or str(exc.status)


def _translate(exc: ApiException, what: str) -> ApplyError:
    message = _server_message(exc)
    if exc.status == 403:
        return ForbiddenError(
            f"{what}: forbidden (403): {message}; the credentials need "
            "get/patch on this resource (see the RBAC of the deploying user)"
        )
    if exc.status == 422 or (exc.status == 500 and _TYPED_PATCH_ERROR in message):
        return ServerInvalidError(f"{what}: rejected by the API server: {message}")
    if exc.status == 400:
        return ServerInvalidError(f"{what}: bad request: {message}")
    if exc.status == 404:
        return ApplyError(f"{what}: not found (404): {message} (does the namespace exist?)")
    return ApplyError(f"{what}: API server answered {exc.status}: {message}")


class Applier:
    """Server-side apply of Strimzi CRs; construct with an ``ApiClient``."""

    def __init__(self, api: client.ApiClient, *, field_manager: str = FIELD_MANAGER):
        self._api = api
        self._objects = client.CustomObjectsApi(api)
        self._field_manager = field_manager
        self._plurals: dict[tuple[str, str], str] = {}

    def _discover(self, api_version: str) -> dict[str, str]:
        """Kind -> plural served under ``/apis/<api_version>``; empty when not served."""
        group, version = api_version.split("/", 1)
        try:
            resp = self._objects.get_api_resources(group, version)
        except ApiException as exc:
            if exc.status == 404:
                return {}
            raise _translate(exc, f"discovery of {api_version}") from exc
        except HTTPError as exc:
            raise ApplyError(f"cannot reach the Kubernetes API server {self._api.configuration.host}: {exc}") from exc
        return {r.kind: r.name for r in resp.resources or () if "/" not in r.name}

    def refs(self, docs: list[dict]) -> list[Ref]:
        """Resolve each CR's plural; :class:`CrdsMissingError` if a kind is not served."""
        served: dict[str, dict[str, str]] = {}
        refs, missing = [], []
        for doc in docs:
            api_version, kind = doc["apiVersion"], doc["kind"]
            if api_version not in served:
                served[api_version] = self._discover(api_version)
            plural = served[api_version].get(kind)
            if plural is None:
                missing.append(f"{kind} ({api_version})")
                continue
            meta = doc["metadata"]
            refs.append(Ref(api_version, kind, plural, meta.get("namespace", "default"), meta["name"]))
        if missing:
            raise CrdsMissingError(f"the cluster does not serve {', '.join(sorted(set(missing)))}: {INSTALL_HINT}")
        return refs

    def apply(self, docs: list[dict], *, dry_run: bool = False) -> list[Ref]:
        refs = self.refs(docs)
        for ref, doc in zip(refs, docs):
            group, version = ref.api_version.split("/", 1)
            try:
                self._objects.patch_namespaced_custom_object(
                    group,
                    version,
                    ref.namespace,
                    ref.plural,
                    ref.name,
                    doc,
                    dry_run="All" if dry_run else None,
                    field_manager=self._field_manager,
                    field_validation="Strict",
                    force=True,
                    _content_type="application/apply-patch+yaml",
                )
            except ApiException as exc:
                raise _translate(exc, f"apply {ref}") from exc
            except HTTPError as exc:
                raise ApplyError(f"apply {ref}: connection failed: {exc}") from exc
        return refs

    def get(self, ref: Ref) -> dict | None:
        group, version = ref.api_version.split("/", 1)
        try:
            return cast(
                "dict | None",
                self._objects.get_namespaced_custom_object(  # the CR as JSON
                    group, version, ref.namespace, ref.plural, ref.name
                ),
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _translate(exc, f"get {ref}") from exc

    def wait_ready(
        self, refs: list[Ref], *, timeout_s: float, poll_s: float = 2.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        pending = [r for r in refs if r.kind in READY_KINDS]
        deadline = clock() + timeout_s
        reasons: dict[Ref, str] = {}
        while True:
            for ref in list(pending):
                ready, why = ready_state(self.get(ref))
                if ready:
                    pending.remove(ref)
                    reasons.pop(ref, None)
                else:
                    reasons[ref] = why
            if not pending:
                return
            if clock() >= deadline:
                lines = [f"{ref}: {reasons[ref]}" for ref in pending]
                raise NotReadyError(
                    f"{len(pending)} resource(s) not Ready after {timeout_s:g}s "
                    "(is the Strimzi operator running and watching this "
                    "namespace?):\n  " + "\n  ".join(lines)
                )
            time.sleep(poll_s)


def ready_state(obj: dict | None) -> tuple[bool, str]:
    """(Ready for the current generation?, why not)."""
    if obj is None:
        return False, "does not exist"
    status = obj.get("status") or {}
    generation = (obj.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and observed is not None and observed < generation:
        return False, f"operator has seen generation {observed}, current is {generation}"
    for cond in status.get("conditions") or ():
        if cond.get("type") == "Ready":
            if cond.get("status") == "True":
                return True, ""
            return False, f"Ready={cond.get('status')}: {cond.get('reason', '')} {cond.get('message', '')}".strip()
    return False, "no Ready condition yet"
