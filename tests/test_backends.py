"""tests/backends.py: the suite picks chDB and the local broker unless told otherwise, and
when told to use containers without a reachable Docker it falls back and says so."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import backends
from tests.conftest import REPO


def _no_probe() -> str | None:
    raise AssertionError("Docker must not be asked when the local backend is wanted")


def test_unset_means_the_local_backends_without_asking_docker() -> None:
    assert backends.choose("clickhouse", {}, _no_probe) == backends.Backend(
        "clickhouse", "chdb", "NETPILOT_TEST_CLICKHOUSE unset"
    )
    kafka = backends.choose("kafka", {"NETPILOT_TEST_KAFKA": "local"}, _no_probe)
    assert (kafka.name, kafka.containers) == ("local broker", False)


def test_testcontainers_with_docker_reachable() -> None:
    chosen = backends.choose("kafka", {"NETPILOT_TEST_KAFKA": "testcontainers"}, lambda: None)
    assert chosen.containers and chosen.describe() == "kafka: testcontainers (Docker reachable)"


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("docker_host", ["unix:///{tmp}/no-docker.sock", "tcp://127.0.0.1:{port}"])
def test_docker_not_reachable_falls_back_to_the_local_backend(
    docker_host: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real probe (testcontainers' Docker client, a ping) against a daemon that is not there."""
    monkeypatch.setenv("DOCKER_HOST", docker_host.format(tmp=tmp_path, port=_closed_port()))
    assert backends.docker_unreachable(timeout_s=2) is not None
    chosen = backends.choose("clickhouse", {"NETPILOT_TEST_CLICKHOUSE": "testcontainers"})
    assert chosen.name == "chdb" and not chosen.containers
    assert chosen.why.startswith("NETPILOT_TEST_CLICKHOUSE=testcontainers but Docker not reachable: ")
    assert chosen.why.endswith("; fell back to chdb")


def test_an_unknown_value_is_refused() -> None:
    with pytest.raises(ValueError, match=r"NETPILOT_TEST_KAFKA='docker': use 'testcontainers', or 'local'"):
        backends.choose("kafka", {"NETPILOT_TEST_KAFKA": "docker"}, _no_probe)


def _pytest(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "bt"), *args],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_suite_runs_on_chdb_and_says_so_when_docker_is_missing(tmp_path: Path) -> None:
    """A real pytest run of the exactly-once tests, asked for a ClickHouse container with no
    Docker: the header names the fallback and the tests pass on chDB."""
    env = {"NETPILOT_TEST_CLICKHOUSE": "testcontainers", "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    proc = _pytest(tmp_path, env, "tests/sinks/clickhouse/test_exactly_once.py")  # no -q: it hides the header
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (
        "netpilot backends: clickhouse: chdb (NETPILOT_TEST_CLICKHOUSE=testcontainers but Docker not reachable: "
        in proc.stdout
    )
    assert "netpilot backends: kafka: local broker (NETPILOT_TEST_KAFKA unset)" in proc.stdout
    assert " passed" in proc.stdout.splitlines()[-1]


def test_a_bad_value_stops_the_run_with_its_message(tmp_path: Path) -> None:
    proc = _pytest(tmp_path, {"NETPILOT_TEST_CLICKHOUSE": "yes"}, "--co", "-q", "tests/test_backends.py")
    assert proc.returncode == 4  # pytest's usage error
    assert "NETPILOT_TEST_CLICKHOUSE='yes': use 'testcontainers'" in proc.stderr
