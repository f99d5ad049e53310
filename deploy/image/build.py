"""Builds netpilot's container image without a container engine (``make image``).

The image is two layers on no base image:

1. **base**: a Debian root filesystem made by ``mmdebstrap`` from Debian's packages (minbase
   of the host's suite and apt sources, plus Python and CA certificates), with the user
   ``netpilot`` (uid/gid 10001) and the directories the chart mounts over. It changes only
   with :data:`BASE_PACKAGES` or this recipe, so it is cached in ``~/.cache/netpilot``.
2. **app**: ``/opt/netpilot``, a virtualenv made with the base's own Python inside the base
   (chroot), holding the project's wheel and its dependencies in the versions of the build
   venv (``pip freeze`` as constraints: the image carries what the tests ran with), byte-compiled
   as unchecked-hash ``.pyc``: the root filesystem is read-only in a pod, so nothing is
   compiled or written at run time.

``crane`` (go-containerregistry, built from the Go module proxy by :mod:`tests.gotools`)
appends both layers to an empty OCI image in a registry it serves on 127.0.0.1 for the
build, sets the configuration (entrypoint ``netpilot``, user 10001, environment, labels) and
writes the image as a tarball that ``docker load``, ``podman load`` and ``crane push`` read.
Its name is the chart's ``image.repository`` and the project's version (pyproject), the tag
the chart deploys by default.

Needs root (mmdebstrap, chroot and mounts in a private mount namespace), ``mmdebstrap`` and
``unshare`` (Debian: mmdebstrap, util-linux), Go, and the package registries. Run it with the
project's venv from the repository's root: ``.venv/bin/python -m deploy.image.build [--out-dir DIR]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests import gotools  # the Go tools' one build-and-cache mechanism (crane)

REPO = gotools.REPO
CHART_DIR = REPO / "deploy" / "helm" / "netpilot"
DEFAULT_OUT = REPO / "out" / "image"
RECIPE_VERSION = "1"
"""Bump to rebuild cached layers after a change this module's hashes do not see."""

UID = GID = 10001
VENV = "/opt/netpilot"
STATE_ROOT = "/var/lib/netpilot"
"""The chart mounts an emptyDir per stateful component below it (strimzi/deploy.py)."""
CONFIG_DIR = "/etc/netpilot"
"""The chart mounts the release's config and the Kafka certificates here."""

BASE_PACKAGES = (
    "python3",  # the interpreter the venv is made with (the suite's Python: 3.11 on bookworm)
    "python3-venv",  # ensurepip, to make the venv
    "ca-certificates",  # TLS to ClickHouse servers with public certificates
)
"""Not carried: birdc, vtysh and iproute2 read routers back or enter namespaces only in the
lab (the injector itself speaks to ExaBGP, which is a Python dependency in the venv)."""

ENV = {
    "PATH": f"{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    # The root filesystem is read-only: whatever a library caches goes to /tmp (an emptyDir).
    "HOME": "/tmp",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "MPLCONFIGDIR": "/tmp/matplotlib",
}
ENTRYPOINT = (f"{VENV}/bin/netpilot",)

# Paths the base layer leaves out: documentation and translations (copyright files stay).
DPKG_EXCLUDES = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
)


@dataclass(frozen=True)
class Image:
    path: Path
    reference: str
    digest: str
    """The manifest digest (``crane digest --tarball``): what a registry stores it under."""


def project_version() -> str:
    return str(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"])


def repository() -> str:
    return str(yaml.safe_load((CHART_DIR / "values.yaml").read_text())["image"]["repository"])


def reference() -> str:
    """``<chart image.repository>:<project version>``: what the chart deploys by default."""
    return f"{repository()}:{project_version()}"


def source_date_epoch() -> int:
    """Timestamps in the image: ``SOURCE_DATE_EPOCH``, else the last commit's time."""
    if "SOURCE_DATE_EPOCH" in os.environ:
        return int(os.environ["SOURCE_DATE_EPOCH"])
    proc = subprocess.run(["git", "log", "-1", "--format=%ct"], cwd=REPO, capture_output=True, text=True)
    return int(proc.stdout.strip()) if proc.returncode == 0 and proc.stdout.strip() else 0


def _log(msg: str) -> None:
    print(f"image: {msg}", file=sys.stderr, flush=True)


def _run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-4000:]}")
    return proc


def _need(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise RuntimeError(f"`{tool}` is not installed: `make system-deps` installs the Debian package {package}")
    return path


def apt_sources() -> tuple[str, str]:
    """The host's Debian suite and apt sources: the image is of the suite the tests ran on."""
    release = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line)
    suite = release.get("VERSION_CODENAME", "").strip('"')
    if release.get("ID") != "debian" or not suite:
        raise RuntimeError("the image is built from the host's Debian suite: this host is not Debian")
    candidates = [Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")]
    for path in candidates:
        if path.exists() and path.read_text().strip():
            return suite, path.read_text()
    raise RuntimeError(f"no apt sources in {', '.join(map(str, candidates))}")


KEEP_CACHED = 2
"""Layers kept per kind in the cache (about 0.6 GB an app layer): the newest ones."""


def _store(tar: Path, target: Path) -> None:
    """Gzip ``tar`` into the cache as ``target`` (crane takes a gzipped layer as it is, so the
    compression is paid once per layer, not per build), then prune older layers of its kind."""
    tmp = target.with_name(target.name + ".tmp")
    with tmp.open("wb") as f:
        # -n: no name or time in the gzip header (same tar, same bytes); -1: crane's own level.
        subprocess.run(["gzip", "-n", "-1", "-c", str(tar)], stdout=f, check=True, timeout=1800)
    tmp.rename(target)  # atomic: a concurrent reader sees all or nothing
    kind = target.name.rsplit("-", 1)[0]
    older = sorted(target.parent.glob(f"{kind}-*.tar.gz"), key=lambda p: p.stat().st_mtime, reverse=True)
    for stale in older[KEEP_CACHED:]:
        stale.unlink(missing_ok=True)


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:16]


BASE_HOOK = f"""set -e
chroot "$1" groupadd --gid {GID} netpilot
chroot "$1" useradd --uid {UID} --gid {GID} --no-create-home --home-dir /tmp --shell /usr/sbin/nologin netpilot
mkdir -p "$1{CONFIG_DIR}" "$1{STATE_ROOT}"
chown {UID}:{GID} "$1{STATE_ROOT}"
"""


def base_layer() -> Path:
    """The Debian layer (cached by its recipe)."""
    suite, sources = apt_sources()
    key = _digest(
        RECIPE_VERSION.encode(),
        suite.encode(),
        sources.encode(),
        " ".join(BASE_PACKAGES).encode(),
        BASE_HOOK.encode(),
        " ".join(DPKG_EXCLUDES).encode(),
    )
    target = gotools.cache_dir() / f"image-base-{key}.tar.gz"
    if target.exists():
        return target
    mmdebstrap = _need("mmdebstrap", "mmdebstrap")
    started = time.monotonic()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="netpilot-image-") as tmp:
        sources_file = Path(tmp) / "sources"
        sources_file.write_text(sources)
        tmp_tar = Path(tmp) / "base.tar"
        cmd = [mmdebstrap, "--mode=root", "--variant=minbase", "--include=" + ",".join(BASE_PACKAGES),
               *(f"--dpkgopt={o}" for o in DPKG_EXCLUDES), f"--customize-hook={BASE_HOOK}",
               suite, str(tmp_tar), str(sources_file)]  # fmt: skip
        _run(cmd, env={**os.environ, "SOURCE_DATE_EPOCH": str(source_date_epoch())}, timeout=1800)
        _store(tmp_tar, target)
    _log(f"built the base layer in {time.monotonic() - started:.0f}s")
    return target


def _project_files() -> list[str]:
    """What the wheel is built from: pyproject, the README (its long description) and the
    packages pyproject includes (an edit of tests or docs does not rebuild the layer)."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]]
    out = _run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO).stdout
    return sorted(
        p
        for p in out.split("\0")
        if (p in ("pyproject.toml", "README.md") or p.split("/", 1)[0] in packages) and (REPO / p).is_file()
    )


def constraints() -> str:
    """The build venv's versions (``pip freeze``), less the project itself."""
    out = _run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"]).stdout
    return "".join(line + "\n" for line in out.splitlines() if not line.lower().startswith("netpilot"))


def build_wheel(files: list[str], out_dir: Path) -> Path:
    """The project's wheel, built from a copy of its files (no build/ or egg-info in the tree)."""
    src = out_dir / "src"
    for rel in files:
        dst = src / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dst)
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", str(out_dir), f"{src}/"],
         timeout=600)  # fmt: skip
    shutil.rmtree(src)
    (wheel,) = out_dir.glob("netpilot-*.whl")
    return wheel


def _host_ca_bundle() -> str:
    """The CA bundle the host's pip trusts: a build machine behind a TLS proxy needs it."""
    for var in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        if os.environ.get(var) and Path(os.environ[var]).is_file():
            return os.environ[var]
    return "/etc/ssl/certs/ca-certificates.crt"


APP_SCRIPT = """set -e
R="$1"
mount --rbind /dev "$R/dev"
mount -t proc proc "$R/proc"
mkdir "$R/build/pip-cache"
mount --bind "$PIP_HOST_CACHE" "$R/build/pip-cache"
cp /etc/resolv.conf "$R/etc/resolv.conf"
cp "$HOST_CA" "$R/build/ca.crt"
run() { chroot "$R" env -i PATH=/usr/bin:/bin HOME=/build PIP_CERT=/build/ca.crt PIP_CACHE_DIR=/build/pip-cache \
    PIP_DISABLE_PIP_VERSION_CHECK=1 $PIP_PASS "$@"; }
run /usr/bin/python3 -m venv VENV
run VENV/bin/pip install -q --no-compile --constraint /build/constraints.txt "/build/$WHEEL"
# Unchecked-hash pycs: valid whatever the files' timestamps in the layer; never rewritten.
# (A file that does not compile fails the build: none does today.)
run VENV/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash VENV/lib
""".replace("VENV", VENV)


def app_layer(base: Path) -> Path:
    """The venv layer (cached by the base, the project's files and the constraints)."""
    files = _project_files()
    pins = constraints()
    h = hashlib.sha256()
    for rel in files:
        h.update(rel.encode() + b"\0" + (REPO / rel).read_bytes() + b"\0")
    key = _digest(RECIPE_VERSION.encode(), base.name.encode(), h.digest(), pins.encode(), APP_SCRIPT.encode())
    target = gotools.cache_dir() / f"image-app-{key}.tar.gz"
    if target.exists():
        return target
    _need("unshare", "util-linux")
    started = time.monotonic()
    pip_cache = Path(_run([sys.executable, "-m", "pip", "cache", "dir"]).stdout.strip())
    pip_cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="netpilot-image-") as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        _run(["tar", "-xzf", str(base), "-C", str(root), "--numeric-owner", "--same-permissions"])
        (root / "build").mkdir()
        wheel = build_wheel(files, root / "build")
        (root / "build" / "constraints.txt").write_text(pins)
        passed = [f"{k}={v}" for k, v in os.environ.items() if k in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL")]
        env = {**os.environ, "PIP_HOST_CACHE": str(pip_cache), "HOST_CA": _host_ca_bundle(),
               "WHEEL": wheel.name, "PIP_PASS": " ".join(passed)}  # fmt: skip
        # A private mount namespace: the mounts go when the script ends, whatever happens.
        _run(["unshare", "--mount", "--propagation", "private", "--fork", "sh", "-c", APP_SCRIPT, "sh", str(root)],
             env=env, timeout=1800)  # fmt: skip
        tmp_tar = Path(tmp) / "app.tar"
        _run(["tar", "-C", str(root), "--sort=name", f"--mtime=@{source_date_epoch()}", "--clamp-mtime",
              "--owner=0", "--group=0", "--numeric-owner",
              "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
              "-cf", str(tmp_tar), VENV.lstrip("/")])  # fmt: skip
        _store(tmp_tar, target)
    _log(f"built the app layer in {time.monotonic() - started:.0f}s")
    return target


class Registry:
    """``crane registry serve`` on 127.0.0.1 for the build: crane sets an image's config only
    on a registry, and writes the result as a tarball."""

    def __init__(self, crane: Path, disk: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.address = f"127.0.0.1:{s.getsockname()[1]}"
        self._proc = subprocess.Popen(
            [str(crane), "registry", "serve", "--address", self.address, "--disk", str(disk)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def __enter__(self) -> Registry:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://{self.address}/v2/", timeout=2):  # our own loopback
                    return self
            except OSError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self.__exit__()
                    raise RuntimeError(f"crane registry serve did not answer on {self.address}") from None
                time.sleep(0.1)

    def __exit__(self, *_: object) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def labels() -> dict[str, str]:
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    out = {
        "org.opencontainers.image.title": "netpilot",
        "org.opencontainers.image.version": project_version(),
        "org.opencontainers.image.licenses": "Apache-2.0",
        "org.opencontainers.image.source": "https://github.com/netpilot/netpilot",
    }
    if commit:
        out["org.opencontainers.image.revision"] = commit
    return out


def platform() -> str:
    """The host's: the layers hold its architecture's Debian packages and wheels."""
    return "linux/" + _run(["dpkg", "--print-architecture"]).stdout.strip()


def assemble(base: Path, app: Path, out: Path) -> Image:
    crane = gotools.crane()
    ref = reference()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="netpilot-image-") as tmp, Registry(crane, Path(tmp)) as reg:
        staged = f"{reg.address}/netpilot:build"
        _run([str(crane), "append", "--oci-empty-base", "-f", str(base), "-f", str(app), "-t", staged], timeout=1800)
        cmd = [str(crane), "mutate", staged, "--set-platform", platform(), "--user", f"{UID}:{GID}",
               "--workdir", "/", "--entrypoint", ",".join(ENTRYPOINT), "-t", ref, "-o", str(out)]  # fmt: skip
        for k, v in ENV.items():
            cmd += ["--env", f"{k}={v}"]
        for k, v in labels().items():
            cmd += ["--label", f"{k}={v}"]
        _run(cmd, timeout=1800)
    digest = _run([str(crane), "digest", "--tarball", str(out)]).stdout.strip()
    return Image(out, ref, digest)


def build(out_dir: Path = DEFAULT_OUT) -> Image:
    """Build (or reuse the cached layers of) the image; returns the tarball and its name."""
    if os.geteuid() != 0:
        raise RuntimeError("building the image needs root (mmdebstrap, chroot, mounts)")
    started = time.monotonic()
    base = base_layer()
    app = app_layer(base)
    image = assemble(base, app, out_dir / f"netpilot-{project_version()}.tar")
    _log(f"{image.reference} ({image.digest}) in {image.path}, {time.monotonic() - started:.0f}s")
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT, help="where the image tarball goes")
    args = parser.parse_args()
    image = build(args.out_dir)
    print(json.dumps({"path": str(image.path), "reference": image.reference, "digest": image.digest}))


if __name__ == "__main__":
    main()
