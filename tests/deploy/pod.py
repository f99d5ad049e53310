"""Runs a container of a rendered Deployment from the image's layers, without a container
engine, the way a kubelet would: the image's entrypoint with the container's ``args``, only
the image's and the container's environment, as the pod's ``runAsUser``/``runAsGroup``
(plus ``fsGroup``), on the image's root filesystem mounted read-only
(``readOnlyRootFilesystem``), with its ``volumeMounts``: emptyDirs as tmpfs, ConfigMaps and
Secrets as read-only directories of files.

Everything runs in its own mount and PID namespaces (``unshare``): the mounts go with the
last process, and the command is PID 1, as in a container. Needs root.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shlex
import signal
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ImageConfig:
    entrypoint: list[str]
    env: dict[str, str]
    user: str
    workdir: str
    labels: dict[str, str]


def read_archive(archive: Path) -> tuple[dict, dict, list[str]]:
    """(manifest entry, config, layer member names) of a ``docker save``-format tarball."""
    with tarfile.open(archive) as tar:
        (manifest,) = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        config = json.load(tar.extractfile(manifest["Config"]))  # type: ignore[arg-type]
    return manifest, config, manifest["Layers"]


def image_config(config: dict) -> ImageConfig:
    c = config["config"]
    env = dict(e.split("=", 1) for e in c.get("Env") or [])
    return ImageConfig(
        c.get("Entrypoint") or [], env, c.get("User", ""), c.get("WorkingDir", ""), c.get("Labels") or {}
    )


def extract_layers(archive: Path, root: Path) -> None:
    """Unpack the layers in order into ``root`` with GNU tar, keeping owners and modes, and
    check each layer's uncompressed digest against the config's ``diff_ids`` on the way (the
    layers are read once). The image's layers carry no whiteouts (two layers, the second only
    adds /opt/netpilot): one found fails."""
    _, config, layers = read_archive(archive)
    diff_ids = config["rootfs"]["diff_ids"]
    assert len(diff_ids) == len(layers)
    with tarfile.open(archive) as outer:
        for name, diff_id in zip(layers, diff_ids):
            untar = subprocess.Popen(
                ["tar", "-xf", "-", "-C", str(root), "--numeric-owner", "--same-permissions"], stdin=subprocess.PIPE
            )
            assert untar.stdin is not None
            digest = hashlib.sha256()
            with gzip.open(outer.extractfile(name)) as layer:  # type: ignore[arg-type]
                while chunk := layer.read(1 << 20):
                    digest.update(chunk)
                    untar.stdin.write(chunk)
            untar.stdin.close()
            assert untar.wait() == 0, f"tar failed on {name}"
            assert f"sha256:{digest.hexdigest()}" == diff_id, f"{name}: not the config's diff_id {diff_id}"
    whiteouts = [str(p) for p in root.rglob(".wh.*")]
    assert not whiteouts, whiteouts[:5]


def _volume_dirs(pod: dict, objects: list[dict], work: Path, secrets: dict[str, dict[str, str]]) -> dict[str, Path]:
    """Volume name -> a host directory with its files (ConfigMaps from the rendered objects,
    Secrets from ``secrets``, the test's stand-ins for what Strimzi and the site create)."""
    config_maps = {o["metadata"]["name"]: o.get("data", {}) for o in objects if o["kind"] == "ConfigMap"}
    out: dict[str, Path] = {}
    for vol in pod["volumes"]:
        if "emptyDir" in vol:
            continue
        d = work / "volumes" / vol["name"]
        d.mkdir(parents=True)
        sources = vol["projected"]["sources"] if "projected" in vol else [vol]
        for src in sources:
            if "configMap" in src:
                data, items = config_maps[src["configMap"]["name"]], src["configMap"].get("items")
            else:
                data, items = secrets[src["secret"]["secretName"]], src["secret"].get("items")
            for item in items or [{"key": k, "path": k} for k in data]:
                (d / item["path"]).write_text(data[item["key"]])
        d.chmod(0o755)
        for f in d.iterdir():
            f.chmod(0o644)  # the kubelet's defaultMode, readable by the pod's user
        out[vol["name"]] = d
    return out


def command(image: ImageConfig, container: dict, extra_args: tuple[str, ...] = ()) -> list[str]:
    """What the kubelet runs: ``args`` replace the image's Cmd, the entrypoint stays."""
    assert "command" not in container, "the chart keeps the image's entrypoint"
    return [*image.entrypoint, *container.get("args", []), *extra_args]


def container_env(
    image: ImageConfig, container: dict, secret_values: dict[tuple[str, str], str], pod_name: str
) -> dict[str, str]:
    """The container's environment as the kubelet resolves it: values, Secret keys and the
    downward API's pod fields (a field the chart uses and this does not know fails here)."""
    env = dict(image.env)
    pod_fields = {"metadata.name": pod_name}
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
        elif "secretKeyRef" in e["valueFrom"]:
            ref = e["valueFrom"]["secretKeyRef"]
            env[e["name"]] = secret_values[(ref["name"], ref["key"])]
        else:
            env[e["name"]] = pod_fields[e["valueFrom"]["fieldRef"]["fieldPath"]]
    return env


def start(
    rootfs: Path,
    work: Path,
    deployment: dict,
    objects: list[dict],
    image: ImageConfig,
    *,
    secrets: dict[str, dict[str, str]],
    env_override: dict[str, str | None] | None = None,
    extra_args: tuple[str, ...] = (),
) -> subprocess.Popen[str]:
    """Start the Deployment's (only) container from ``rootfs``; stdout and stderr are piped."""
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    sc_pod, sc = pod["securityContext"], container["securityContext"]
    uid, gid, fs_group = sc_pod["runAsUser"], sc_pod["runAsGroup"], sc_pod.get("fsGroup")
    secret_values = {(name, k): v for name, data in secrets.items() for k, v in data.items()}
    # a Deployment's pod: <deployment>-<ReplicaSet hash>-<random>
    env = container_env(image, container, secret_values, f"{deployment['metadata']['name']}-7d9f8b6c5d-x2x9q")
    for k, v in (env_override or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    dirs = _volume_dirs(pod, objects, work, secrets)
    empty = {v["name"] for v in pod["volumes"] if "emptyDir" in v}

    # The mount points a runtime creates in the container's root before it starts.
    for m in container["volumeMounts"]:
        (rootfs / m["mountPath"].lstrip("/")).mkdir(parents=True, exist_ok=True)
    # Nested mounts (kafka-ca inside the config directory) need their point in the outer volume.
    for m in container["volumeMounts"]:
        for outer in container["volumeMounts"]:
            inner = m["mountPath"]
            if outer is not m and outer["name"] in dirs and inner.startswith(outer["mountPath"].rstrip("/") + "/"):
                (dirs[outer["name"]] / inner[len(outer["mountPath"]) :].lstrip("/")).mkdir(parents=True, exist_ok=True)

    r = shlex.quote(str(rootfs))
    lines = [
        "set -e",
        f"mount --bind {r} {r}",
        f"mount -o remount,bind,ro {r}" if sc.get("readOnlyRootFilesystem") else ":",
        f"mount -t proc proc {r}/proc",
        # A minimal /dev, as runtimes give.
        f"mount -t tmpfs -o mode=0755,nosuid dev {r}/dev",
    ]
    for node in ("null", "zero", "full", "random", "urandom", "tty"):
        lines += [f"touch {r}/dev/{node}", f"mount --bind /dev/{node} {r}/dev/{node}"]
    for m in sorted(container["volumeMounts"], key=lambda m: m["mountPath"].count("/")):
        target = shlex.quote(str(rootfs / m["mountPath"].lstrip("/")))
        if m["name"] in empty:
            # An emptyDir: writable by the pod's fsGroup (the kubelet makes it 0777 + setgid).
            lines.append(f"mount -t tmpfs -o mode=2777,gid={fs_group or 0} {m['name']} {target}")
        else:
            lines += [f"mount --bind {shlex.quote(str(dirs[m['name']]))} {target}"]
            if m.get("readOnly"):
                lines.append(f"mount -o remount,bind,ro {target}")
    groups = f"{gid},{fs_group}" if fs_group else str(gid)
    env_args = " ".join(shlex.quote(f"{k}={v}") for k, v in env.items())
    cmd = " ".join(shlex.quote(a) for a in command(image, container, extra_args))
    lines.append(f"exec chroot --userspec={uid}:{gid} --groups={groups} {r} /usr/bin/env -i {env_args} {cmd}")
    return subprocess.Popen(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--pid",
            "--fork",
            "--kill-child=SIGTERM",
            "sh",
            "-c",
            "\n".join(lines),
        ],  # fmt: skip
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def container_pid(proc: subprocess.Popen[str]) -> int | None:
    """The host PID of the container's process (PID 1 of its namespace): unshare's child."""
    try:
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def stop(proc: subprocess.Popen[str], timeout: float = 30) -> tuple[int, str, str]:
    """SIGTERM to the container's process only (what the kubelet sends; as PID 1 it gets it
    only if it handles it), then the exit code and output; SIGKILL after ``timeout``."""
    pid = container_pid(proc)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return -9, out, err
    return proc.returncode, out, err
