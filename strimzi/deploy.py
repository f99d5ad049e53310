"""Kustomize bases that run netpilot's own components next to the Strimzi cluster.

``netpilot strimzi render`` writes them to ``deploy/base/{core,pop}`` (committed; a test
re-renders and compares). Users do not edit the bases: an environment or a PoP is an
overlay of a few lines (``deploy/overlays/*``): namespace, name suffix, image tag and its
own ``netpilot.yaml``.

Kafka credentials come from the Secrets Strimzi's User Operator creates for each
``KafkaUser`` (:mod:`strimzi.render`), in the KafkaUser's namespace, so the components run
in that namespace (``kafka`` by default):

- SCRAM users: Secret ``netpilot-<component>`` key ``password`` -> ``NETPILOT_KAFKA__SASL_PASSWORD``;
  listener 9093, ``SASL_SSL`` + ``SCRAM-SHA-512``.
- mTLS users: the same Secret's ``user.crt``/``user.key`` mounted as files; listener 9094, ``SSL``.
- Both trust the cluster CA: Secret ``<cluster>-cluster-ca-cert`` key ``ca.crt``.

Settings reach the processes as ``NETPILOT_KAFKA__*`` (shared section, see
:mod:`netpilot.settings`) and ``/etc/netpilot/netpilot.yaml`` from the ConfigMap
``netpilot-config``. Metrics and health: ``NETPILOT_METRICS__LISTEN=0.0.0.0:9464``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from netpilot.catalog import Component
from strimzi.render import HEADER, RenderOptions, user_name, write_files

DEPLOY_DIR = Path(__file__).resolve().parent.parent / "deploy"
IMAGE = "ghcr.io/netpilot/netpilot"
IMAGE_TAG = "0.1.0"
CONFIG_DIR = "/etc/netpilot"
CONFIG_FILE = f"{CONFIG_DIR}/netpilot.yaml"
METRICS_PORT = 9464
SCRAM_PORT, MTLS_PORT = 9093, 9094
USER_CERT_DIR = "/etc/netpilot/kafka-user"
CA_DIR = "/etc/netpilot/kafka-ca"


@dataclass(frozen=True)
class Workload:
    """One netpilot process as a Deployment."""

    component: Component
    section: str
    """Its settings' COMPONENT (YAML section, ``NETPILOT_<SECTION>__`` env prefix)."""
    command: tuple[str, ...]
    tier: Literal["core", "pop"]
    cpu: str
    memory: str
    replicas: int = 1
    udp_ports: tuple[tuple[str, int], ...] = ()
    state_dir: str | None = None
    secret_env: tuple[tuple[str, str, str], ...] = ()
    """(env var, Secret, key) the operator of the site provides (not Strimzi's)."""
    optional_env_secret: str | None = None
    """A Secret whose keys become env vars when it exists (e.g. SNMP credentials)."""

    @property
    def name(self) -> str:
        return user_name(self.component)


WORKLOADS: tuple[Workload, ...] = (
    Workload(
        Component.COLLECTOR,
        "collector",
        ("collector", "run"),
        "pop",
        "1",
        "1Gi",
        udp_ports=(("netflow", 2055), ("ipfix", 4739), ("sflow", 6343)),
    ),
    Workload(
        Component.SNMP_POLLER,
        "snmp",
        ("snmp", "poll"),
        "pop",
        "200m",
        "256Mi",
        optional_env_secret="netpilot-snmp-credentials",
    ),
    Workload(
        Component.STREAMS, "streams", ("streams", "run"), "core", "2", "4Gi", state_dir="/var/lib/netpilot/streams"
    ),
    Workload(
        Component.AUTOPILOT,
        "autopilot",
        ("autopilot", "run"),
        "core",
        "500m",
        "1Gi",
        state_dir="/var/lib/netpilot/autopilot",
    ),
    Workload(
        Component.SINK_CLICKHOUSE,
        "sink-clickhouse",
        ("sink", "clickhouse", "run"),
        "core",
        "1",
        "2Gi",
        secret_env=(("NETPILOT_SINK_CLICKHOUSE__DSN", "netpilot-clickhouse", "dsn"),),
    ),
    Workload(Component.SINK_PROMETHEUS, "sink-prometheus", ("sink", "prometheus", "run"), "core", "200m", "512Mi"),
)


def _labels(w: Workload) -> dict[str, str]:
    return {"app.kubernetes.io/name": w.name, "app.kubernetes.io/component": w.component.value}


def _kafka_env(w: Workload, opts: RenderOptions) -> list[dict]:
    auth = opts.user_auth.get(w.component, "scram-sha-512")
    port = MTLS_PORT if auth == "tls" else SCRAM_PORT
    env: list[dict[str, Any]] = [
        {
            "name": "NETPILOT_KAFKA__BOOTSTRAP_SERVERS",
            "value": f"{opts.cluster}-kafka-bootstrap.{opts.namespace}.svc:{port}",
        },
        {"name": "NETPILOT_KAFKA__CLIENT_ID", "value": w.name},
        {"name": "NETPILOT_KAFKA__SSL_CA_LOCATION", "value": f"{CA_DIR}/ca.crt"},
    ]
    if auth == "tls":
        env += [
            {"name": "NETPILOT_KAFKA__SECURITY_PROTOCOL", "value": "SSL"},
            {"name": "NETPILOT_KAFKA__SSL_CERTIFICATE_LOCATION", "value": f"{USER_CERT_DIR}/user.crt"},
            {"name": "NETPILOT_KAFKA__SSL_KEY_LOCATION", "value": f"{USER_CERT_DIR}/user.key"},
        ]
    else:
        env += [
            {"name": "NETPILOT_KAFKA__SECURITY_PROTOCOL", "value": "SASL_SSL"},
            {"name": "NETPILOT_KAFKA__SASL_MECHANISM", "value": "SCRAM-SHA-512"},
            {"name": "NETPILOT_KAFKA__SASL_USERNAME", "value": w.name},
            {
                "name": "NETPILOT_KAFKA__SASL_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": w.name, "key": "password"}},
            },
        ]
    return env


def _volumes(w: Workload, opts: RenderOptions) -> tuple[list[dict], list[dict]]:
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": "netpilot-config"}},
        {
            "name": "kafka-ca",
            "secret": {"secretName": f"{opts.cluster}-cluster-ca-cert", "items": [{"key": "ca.crt", "path": "ca.crt"}]},
        },
        {"name": "tmp", "emptyDir": {}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "kafka-ca", "mountPath": CA_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    if opts.user_auth.get(w.component, "scram-sha-512") == "tls":
        volumes.append(
            {
                "name": "kafka-user",
                "secret": {
                    "secretName": w.name,
                    "defaultMode": 0o400,
                    "items": [{"key": "user.crt", "path": "user.crt"}, {"key": "user.key", "path": "user.key"}],
                },
            }
        )
        mounts.append({"name": "kafka-user", "mountPath": USER_CERT_DIR, "readOnly": True})
    if w.state_dir:
        volumes.append({"name": "state", "emptyDir": {}})
        mounts.append({"name": "state", "mountPath": w.state_dir})
    return volumes, mounts


def deployment(w: Workload, opts: RenderOptions) -> dict:
    volumes, mounts = _volumes(w, opts)
    env = _kafka_env(w, opts) + [
        {"name": "NETPILOT_METRICS__LISTEN", "value": f"0.0.0.0:{METRICS_PORT}"},
        {"name": "NETPILOT_LOG__FORMAT", "value": "json"},
    ]
    if w.state_dir:
        env.append({"name": f"NETPILOT_{w.section.upper().replace('-', '_')}__DATA_DIR", "value": w.state_dir})
    env += [
        {"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}} for var, secret, key in w.secret_env
    ]
    ports = [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}]
    ports += [{"name": n, "containerPort": p, "protocol": "UDP"} for n, p in w.udp_ports]
    container: dict = {
        "name": w.component.value,
        "image": f"{IMAGE}:{IMAGE_TAG}",
        "args": [*w.command, "--config", CONFIG_FILE],
        "env": env,
        "ports": ports,
        "volumeMounts": mounts,
        "resources": {"requests": {"cpu": w.cpu, "memory": w.memory}, "limits": {"memory": w.memory}},
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "metrics"},
            "periodSeconds": 10,
            "failureThreshold": 6,
        },
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "metrics"}, "periodSeconds": 5},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    if w.optional_env_secret:
        container["envFrom"] = [{"secretRef": {"name": w.optional_env_secret, "optional": True}}]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": w.name, "labels": _labels(w)},
        "spec": {
            "replicas": w.replicas,
            "selector": {"matchLabels": _labels(w)},
            # One process per Kafka consumer group member; a surge would only rebalance twice.
            "strategy": {"type": "Recreate"} if w.state_dir else {"type": "RollingUpdate"},
            "template": {
                "metadata": {
                    "labels": _labels(w),
                    "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(METRICS_PORT)},
                },
                "spec": {
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "runAsGroup": 10001,
                        "fsGroup": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "automountServiceAccountToken": False,
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def services(w: Workload) -> list[dict]:
    metrics = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"{w.name}-metrics", "labels": _labels(w)},
        "spec": {
            "selector": _labels(w),
            "ports": [{"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"}],
        },
    }
    out = [metrics]
    if w.udp_ports:
        # Exporters are identified by their source address: Local keeps it (no SNAT).
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": f"{w.name}-flows", "labels": _labels(w)},
                "spec": {
                    "type": "LoadBalancer",
                    "externalTrafficPolicy": "Local",
                    "selector": _labels(w),
                    "ports": [{"name": n, "port": p, "targetPort": n, "protocol": "UDP"} for n, p in w.udp_ports],
                },
            }
        )
    return out


BASE_CONFIG = """\
# Shared settings of the netpilot processes in this base. An overlay replaces this file
# (configMapGenerator behavior: replace) with its own, adding the component sections
# (collector:, snmp:, streams: ...). Kafka access comes from NETPILOT_KAFKA__* env vars
# set by the Deployments from the Strimzi KafkaUser Secrets.
log:
  level: info
"""


def render_base(tier: str, opts: RenderOptions = RenderOptions()) -> dict[str, str]:
    """File name -> text for ``deploy/base/<tier>``."""
    files: dict[str, str] = {}
    for w in WORKLOADS:
        if w.tier == tier:
            docs = [deployment(w, opts), *services(w)]
            files[f"{w.component.value}.yaml"] = HEADER + yaml.safe_dump_all(
                docs, sort_keys=False, explicit_start=True, width=100
            )
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "labels": [
            {"pairs": {"app.kubernetes.io/part-of": "netpilot", "netpilot.io/tier": tier}, "includeSelectors": True}
        ],
        "resources": sorted(files),
        "configMapGenerator": [{"name": "netpilot-config", "files": ["netpilot.yaml"]}],
    }
    files["kustomization.yaml"] = HEADER + yaml.safe_dump(kustomization, sort_keys=False)
    files["netpilot.yaml"] = BASE_CONFIG
    return files


def write_bases(deploy_dir: Path = DEPLOY_DIR, opts: RenderOptions = RenderOptions()) -> list[Path]:
    return [
        path for tier in ("core", "pop") for path in write_files(deploy_dir / "base" / tier, render_base(tier, opts))
    ]
