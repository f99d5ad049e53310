"""The container image `make image` builds (deploy/image/build.py): a well-formed image
archive named as the chart deploys it by default, whose every Deployment of the example
releases runs in it as the chart runs it: the image's entrypoint with the Deployment's args,
environment and volumes, as uid 10001 on a read-only root filesystem (tests/deploy/pod.py,
no container engine). One of them, the Prometheus exporter, serves /healthz against a real
broker and stops cleanly on SIGTERM as PID 1."""

from __future__ import annotations

import copy
import dataclasses
import json
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from deploy.image import build
from netpilot.settings import KafkaSettings
from strimzi.deploy import CHART_DIR, WORKLOADS
from tests import gotools
from tests.deploy import helm, pod

# Building the image and running it need root (mmdebstrap, chroot, mounts).
pytestmark = pytest.mark.netns

RELEASES = ("netpilot", "netpilot-fra1")
"""The central release and a PoP whose inventory the chart carries: every workload once."""
STAND_IN_PEM = "-----BEGIN CERTIFICATE-----\nstand-in\n-----END CERTIFICATE-----\n"


def deployments(release: str) -> tuple[list[dict], list[dict]]:
    objects = helm.template_example(release)
    return [o for o in objects if o["kind"] == "Deployment"], objects


def stand_in_secrets(deployment: dict) -> dict[str, dict[str, str]]:
    """What Strimzi's operators and the site would create: the keys the pod reads."""
    spec = deployment["spec"]["template"]["spec"]
    out: dict[str, dict[str, str]] = {}
    for vol in spec["volumes"]:
        if "secret" in vol:
            out[vol["secret"]["secretName"]] = {i["key"]: STAND_IN_PEM for i in vol["secret"]["items"]}
    for e in spec["containers"][0].get("env", []):
        if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]:
            ref = e["valueFrom"]["secretKeyRef"]
            value = "http://127.0.0.1:8123/default" if ref["key"] == "dsn" else "stand-in-" + ref["key"]
            out.setdefault(ref["name"], {})[ref["key"]] = value
    return out


def image_config(image: build.Image) -> pod.ImageConfig:
    return pod.image_config(pod.read_archive(image.path)[1])


def run_to_exit(rootfs: Path, work: Path, deployment: dict, objects: list[dict], image: build.Image, **kw):
    proc = pod.start(rootfs, work, deployment, objects, image_config(image), secrets=stand_in_secrets(deployment), **kw)
    try:
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            pod.stop(proc, timeout=5)
    return proc.returncode, out, err


def test_archive_is_a_valid_image_named_as_the_chart_deploys_it(container_image: build.Image) -> None:
    crane = str(gotools.crane())
    # --fast: the manifest and config; the layers' digests are checked as image_rootfs unpacks them.
    proc = subprocess.run(
        [crane, "validate", "--fast", "--tarball", str(container_image.path)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    manifest, config, layers = pod.read_archive(container_image.path)
    assert manifest["RepoTags"] == [container_image.reference]
    assert container_image.reference == f"{build.repository()}:{build.project_version()}"
    assert len(layers) == 2 and len(config["rootfs"]["diff_ids"]) == 2
    c = pod.image_config(config)
    assert c.entrypoint == ["/opt/netpilot/bin/netpilot"]
    assert c.user == "10001:10001"
    assert c.env["HOME"] == "/tmp" and c.env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert c.env["PATH"].split(":")[0] == "/opt/netpilot/bin"
    assert c.labels["org.opencontainers.image.version"] == build.project_version()
    assert config["os"] == "linux" and f"linux/{config['architecture']}" == build.platform()


def test_crane_push_gives_the_registry_the_same_image(container_image: build.Image) -> None:
    """What a platform team does with the tarball (docs/deploy.md), to a registry on loopback
    (its blobs in a temp dir removed at the end: 0.6 GB)."""
    crane = str(gotools.crane())
    with (
        tempfile.TemporaryDirectory(prefix="netpilot-registry-") as disk,
        build.Registry(gotools.crane(), Path(disk)) as registry,
    ):
        ref = f"{registry.address}/netpilot:{build.project_version()}"
        push = subprocess.run([crane, "push", str(container_image.path), ref], capture_output=True, text=True)
        assert push.returncode == 0, push.stderr
        digest = subprocess.run([crane, "digest", ref], capture_output=True, text=True)
        assert digest.stdout.strip() == container_image.digest, digest.stderr
        config = subprocess.run([crane, "config", ref], capture_output=True, text=True)
        assert json.loads(config.stdout)["config"]["User"] == "10001:10001"


def test_the_charts_default_image_is_the_one_make_image_builds(container_image: build.Image) -> None:
    import yaml

    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert chart["appVersion"] == build.project_version(), "Chart.yaml appVersion must be pyproject's version"
    uid, gid = (int(x) for x in image_config(container_image).user.split(":"))
    for release in RELEASES:
        for d in deployments(release)[0]:
            spec = d["spec"]["template"]["spec"]
            assert spec["containers"][0]["image"] == container_image.reference, d["metadata"]["name"]
            assert (spec["securityContext"]["runAsUser"], spec["securityContext"]["runAsGroup"]) == (uid, gid)


PROBE = """
import errno, importlib.util, os, sys
import netpilot.cli
assert (os.getuid(), os.getgid()) == (10001, 10001), (os.getuid(), os.getgid())
assert 10001 in os.getgroups()
assert netpilot.cli.__file__.startswith("/opt/netpilot/"), netpilot.cli.__file__
assert os.path.exists(importlib.util.cache_from_source(netpilot.cli.__file__)), "no .pyc shipped"
for path in ("/opt/netpilot/x", "/x", "/etc/netpilot/x"):
    try:
        open(path, "w")
    except OSError as exc:
        assert exc.errno in (errno.EROFS, errno.EACCES), (path, exc)
    else:
        raise AssertionError(path + " is writable")
for d in ("/tmp", "/var/lib/netpilot/streams"):
    with open(d + "/probe", "w") as f:
        f.write("ok")
print("probe ok")
"""


def test_the_sandbox_is_the_pods(container_image: build.Image, image_rootfs: Path, tmp_path: Path) -> None:
    """The harness itself, from inside: uid/gid 10001, read-only root and config, writable
    /tmp and state directory, the venv's compiled modules (so the runs above mean something)."""
    deps, objects = deployments("netpilot")
    (d,) = [x for x in deps if x["metadata"]["labels"]["app.kubernetes.io/component"] == "streams"]
    d = copy.deepcopy(d)
    d["spec"]["template"]["spec"]["containers"][0]["args"] = ["-c", PROBE]
    image = dataclasses.replace(image_config(container_image), entrypoint=["/opt/netpilot/bin/python"])
    proc = pod.start(image_rootfs, tmp_path, d, objects, image, secrets=stand_in_secrets(d))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "probe ok" in out, err


def test_netpilot_help_runs_in_the_image(container_image: build.Image, image_rootfs: Path, tmp_path: Path) -> None:
    deps, objects = deployments("netpilot")
    d = copy.deepcopy(deps[0])
    d["spec"]["template"]["spec"]["containers"][0]["args"] = ["--help"]
    rc, out, err = run_to_exit(image_rootfs, tmp_path, d, objects, container_image)
    assert rc == 0, err
    for group in ("collector", "streams", "autopilot", "sink", "injector", "routes", "snmp"):
        assert group in out, (group, out)


@pytest.mark.parametrize("workload", [w.key for w in WORKLOADS])
def test_every_workload_checks_its_config_in_the_image(
    workload: str, container_image: build.Image, image_rootfs: Path, tmp_path: Path
) -> None:
    """The Deployment's own command, env and volumes, with --check: the component's code,
    settings and the chart's config load in the image, as uid 10001 on a read-only root."""
    found = [
        (d, objects)
        for release in RELEASES
        for deps, objects in [deployments(release)]
        for d in deps
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == workload
    ]
    assert len(found) == 1, workload
    d, objects = found[0]
    rc, out, err = run_to_exit(image_rootfs, tmp_path, d, objects, container_image, extra_args=("--check",))
    assert rc == 0, f"{workload}: exit {rc}\n{out}\n{err}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_prometheus_exporter_serves_healthz_in_the_image_and_stops_on_sigterm(
    container_image: build.Image, image_rootfs: Path, tmp_path: Path, kafka_settings: KafkaSettings
) -> None:
    # kafka_settings: the catalog's topics exist before the pod starts, as Strimzi's KafkaTopic
    # CRs make them. A missing subscribed topic is fatal to the exporter; without them the
    # exporter once failed before the SIGTERM, when the broker answered before /healthz was read.
    deps, objects = deployments("netpilot")
    (d,) = [x for x in deps if x["metadata"]["labels"]["app.kubernetes.io/component"] == "sink-prometheus"]
    port = _free_port()
    # The chart's env, but Kafka is the test broker (plaintext) and the metrics port is free.
    override: dict[str, str | None] = {
        "NETPILOT_KAFKA__BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "NETPILOT_KAFKA__SECURITY_PROTOCOL": "PLAINTEXT",
        "NETPILOT_KAFKA__SASL_MECHANISM": None,
        "NETPILOT_KAFKA__SASL_USERNAME": None,
        "NETPILOT_KAFKA__SASL_PASSWORD": None,
        "NETPILOT_KAFKA__SSL_CA_LOCATION": None,
        "NETPILOT_KAFKA__TOPIC_PREFIX": kafka_settings.topic_prefix,
        "NETPILOT_METRICS__LISTEN": f"127.0.0.1:{port}",
    }
    proc = pod.start(
        image_rootfs, tmp_path, d, objects, image_config(container_image),
        secrets=stand_in_secrets(d), env_override=override,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        status, body = 0, ""
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    status, body = r.status, r.read().decode()
                    break
            except OSError:
                time.sleep(0.2)
        assert status == 200, f"no /healthz within the deadline (exit {proc.poll()})"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            assert "netpilot_sink_prometheus_" in r.read().decode()
    finally:
        rc, out, err = pod.stop(proc)
    assert rc == 0, f"exit {rc} on SIGTERM as PID 1\n{err[-3000:]}"
    assert body
