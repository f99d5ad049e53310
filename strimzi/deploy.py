"""What the Helm chart (``deploy/helm/netpilot``) needs to know about each netpilot process,
derived from the catalog.

``netpilot strimzi render`` writes it to ``deploy/helm/netpilot/files/generated/workloads.yaml``
(committed; a test re-renders and compares). The chart's templates read that file and build
one Deployment (plus Services, PodDisruptionBudget, NetworkPolicy) per enabled workload of
the release's tier; ``values.yaml`` holds only what an operator tunes (replicas, resources,
network peers). So a component's Kafka identity never has two spellings:

- its ``KafkaUser`` (:func:`strimzi.render.user_name`) = the Secret Strimzi's User Operator
  creates = the SCRAM user name or the TLS certificate's CN;
- its authentication (:data:`strimzi.render.DEFAULT_USER_AUTH`): SCRAM users read
  ``password`` into ``NETPILOT_KAFKA__SASL_PASSWORD`` and use listener 9093 (``SASL_SSL``);
  mTLS users mount ``user.crt``/``user.key`` and use listener 9094 (``SSL``);
- every workload trusts the cluster CA (Secret ``<cluster>-cluster-ca-cert``, key ``ca.crt``).

Settings reach the processes as ``NETPILOT_KAFKA__*`` (the shared section, see
:mod:`netpilot.settings`) and ``/etc/netpilot/netpilot.yaml`` from the release's ConfigMap.
Metrics and ``/healthz``: ``NETPILOT_METRICS__LISTEN=0.0.0.0:9464``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from netpilot.catalog import Component
from strimzi.render import HEADER, RenderOptions, user_name, write_files

CHART_DIR = Path(__file__).resolve().parent.parent / "deploy" / "helm" / "netpilot"
GENERATED_DIR = CHART_DIR / "files" / "generated"
CONFIG_DIR = "/etc/netpilot"
METRICS_PORT = 9464
SCRAM_PORT, MTLS_PORT = 9093, 9094
USER_CERT_DIR = "/etc/netpilot/kafka-user"
CA_DIR = "/etc/netpilot/kafka-ca"


@dataclass(frozen=True)
class Workload:
    """One netpilot process as a Deployment."""

    key: str
    """Its name in the chart's values (``components.<key>``) and in object names."""
    component: Component
    section: str
    """Its settings' COMPONENT (YAML section, ``NETPILOT_<SECTION>__`` env prefix)."""
    command: tuple[str, ...]
    tier: Literal["core", "pop"]
    udp_ports: tuple[tuple[str, int], ...] = ()
    """Flow ports exporters send to (a LoadBalancer Service keeps their source address)."""
    tcp_ports: tuple[tuple[str, int], ...] = ()
    """Session ports routers connect to (BMP)."""
    state_dir: str | None = None
    """A writable directory (emptyDir), passed as ``NETPILOT_<SECTION>__<STATE_SETTING>``."""
    state_setting: str = "DATA_DIR"
    secret_env: tuple[tuple[str, str, str], ...] = ()
    """(env var, Secret, key) the operator of the site provides (not Strimzi's)."""
    optional_env_secret: str | None = None
    """A Secret whose keys become env vars when it exists (e.g. SNMP credentials)."""
    egress: tuple[str, ...] = ()
    """Extra egress the NetworkPolicy opens (names of ``networkPolicy.*`` value blocks)."""
    env: tuple[tuple[str, str], ...] = ()
    """(setting, value) a pod needs unlike a workstation, passed as ``NETPILOT_<SECTION>__<SETTING>``."""
    static_membership_setting: str | None = None
    """The setting that makes its Kafka consumer a static group member (``group.instance.id``).
    With the chart's ``components.<key>.staticMembership`` it is given the pod's name (the
    downward API): a container restarted in its pod (a crash, the OOM killer, a failed
    liveness probe) keeps the name and takes its partitions back at once, while two pods
    never share one (docs/recovery.md)."""

    @property
    def user(self) -> str:
        return user_name(self.component)


WORKLOADS: tuple[Workload, ...] = (
    Workload(
        "collector",
        Component.COLLECTOR,
        "collector",
        ("collector", "run"),
        "pop",
        # = CollectorSettings' netflow_port (NetFlow v5/v9 and IPFIX) and sflow_port.
        udp_ports=(("netflow", 2055), ("sflow", 6343)),
    ),
    Workload(
        "snmp-poller",
        Component.SNMP_POLLER,
        "snmp",
        ("snmp", "poll"),
        "pop",
        optional_env_secret="netpilot-snmp-credentials",
        egress=("snmp",),
    ),
    # `netpilot routes bmp run`: routers open a BMP session (TCP) to it; it publishes their
    # routes to the routes topic as the "routes" component does. It listens on loopback by
    # default (BmpSettings.listen); a pod must listen on its own address for the routers.
    Workload(
        "bmp",
        Component.ROUTES,
        "bmp",
        ("routes", "bmp", "run"),
        "pop",
        tcp_ports=(("bmp", 11019),),
        env=(("LISTEN", "0.0.0.0:11019"),),
    ),
    Workload(
        "streams",
        Component.STREAMS,
        "streams",
        ("streams", "run"),
        "core",
        state_dir="/var/lib/netpilot/streams",
        static_membership_setting="GROUP_INSTANCE_ID",
    ),
    Workload(
        "autopilot",
        Component.AUTOPILOT,
        "autopilot",
        ("autopilot", "run"),
        "core",
        state_dir="/var/lib/netpilot/autopilot",
        static_membership_setting="GROUP_INSTANCE_ID",
    ),
    Workload(
        "sink-clickhouse",
        Component.SINK_CLICKHOUSE,
        "sink-clickhouse",
        ("sink", "clickhouse", "run"),
        "core",
        secret_env=(("NETPILOT_SINK_CLICKHOUSE__DSN", "netpilot-clickhouse", "dsn"),),
        egress=("clickhouse",),
        static_membership_setting="GROUP_INSTANCE_ID",
    ),
    Workload("sink-prometheus", Component.SINK_PROMETHEUS, "sink-prometheus", ("sink", "prometheus", "run"), "core"),
    # The BGP injector consumes the recommendations as the autopilot's consumer and holds
    # iBGP sessions to the routers (ExaBGP, run dir writable).
    Workload(
        "injector",
        Component.AUTOPILOT_CONSUMER,
        "injector",
        ("injector", "run"),
        "core",
        state_dir="/var/lib/netpilot/injector",
        state_setting="RUN_DIR",
        egress=("bgp",),
    ),
)


def _env_name(section: str, setting: str) -> str:
    return f"NETPILOT_{section.upper().replace('-', '_')}__{setting}"


def workload_facts(w: Workload, opts: RenderOptions) -> dict[str, Any]:
    """What the templates need for one workload (plain data, no Kubernetes objects)."""
    auth = opts.user_auth.get(w.component, "scram-sha-512")
    facts: dict[str, Any] = {
        "tier": w.tier,
        "component": w.component.value,
        "kafkaUser": w.user,
        "kafkaAuth": auth,
        "kafkaPort": MTLS_PORT if auth == "tls" else SCRAM_PORT,
        "args": list(w.command),
        "udpPorts": [{"name": n, "port": p} for n, p in w.udp_ports],
        "tcpPorts": [{"name": n, "port": p} for n, p in w.tcp_ports],
        "stateDir": w.state_dir,
        "stateEnv": _env_name(w.section, w.state_setting) if w.state_dir else None,
        "secretEnv": [{"name": v, "secret": s, "key": k} for v, s, k in w.secret_env],
        "optionalEnvSecret": w.optional_env_secret,
        "egress": list(w.egress),
        "env": [{"name": _env_name(w.section, k), "value": v} for k, v in w.env],
        "staticMembershipEnv": (
            _env_name(w.section, w.static_membership_setting) if w.static_membership_setting else None
        ),
    }
    return facts


def render_chart_files(opts: RenderOptions = RenderOptions()) -> dict[str, str]:
    """File name -> text for ``deploy/helm/netpilot/files/generated``."""
    data = {
        "paths": {"config": CONFIG_DIR, "kafkaCa": CA_DIR, "kafkaUserCert": USER_CERT_DIR},
        "metricsPort": METRICS_PORT,
        "workloads": {w.key: workload_facts(w, opts) for w in WORKLOADS},
    }
    return {"workloads.yaml": HEADER + yaml.safe_dump(data, sort_keys=False, width=100)}


def write_chart_files(out_dir: Path = GENERATED_DIR, opts: RenderOptions = RenderOptions()) -> list[Path]:
    return write_files(out_dir, render_chart_files(opts))
