"""`netpilot dev kafka status` reports the real broker: Kafka 4.3.1 in KRaft mode."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


def test_status_reports_kafka_431_kraft(local_kafka_broker: str) -> None:
    state = os.environ.get("NETPILOT_TEST_KAFKA_DIR", str(REPO / ".netpilot" / "test-kafka"))
    out = subprocess.run(
        [sys.executable, "-m", "netpilot.cli", "dev", "kafka", "status", "--state-dir", state],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "Kafka 4.3.1 running" in out.stdout
    assert "KRaft (process.roles=broker,controller)" in out.stdout
    assert f"PLAINTEXT://{local_kafka_broker}" in out.stdout


def test_up_is_idempotent_and_reuses_a_healthy_broker(local_kafka_broker: str) -> None:
    from netpilot.dev.kafka import LocalKafka

    state = Path(os.environ.get("NETPILOT_TEST_KAFKA_DIR", REPO / ".netpilot" / "test-kafka"))
    info = LocalKafka(state).up()
    assert info.reused and info.bootstrap == local_kafka_broker


@pytest.mark.kafka  # starts and kills a broker of its own
def test_dead_broker_is_replaced_and_down_stops_it(tmp_path: Path) -> None:
    """A second broker in its own folder: SIGKILL it, `up` starts a new one; `down` stops it."""
    import signal

    from netpilot.dev.kafka import LocalKafka

    # below the ephemeral port range (32768-60999): a busy machine's outgoing connections
    # cannot take the port between the SIGKILL and the restart on the same port
    k = LocalKafka(tmp_path / "kafka", port=29192)
    try:
        first = k.up()
        os.kill(first.pid, signal.SIGKILL)
        # `up` at once, as after a crash: the dying JVM still holds the port for a moment
        # (its pid already reads as gone), which `up` used to report as another process's
        second = k.up()
        if _is_child(first.pid):
            # reaped already if subprocess's bookkeeping of the dropped Popen got there first
            with contextlib.suppress(ChildProcessError):
                os.waitpid(first.pid, 0)
        assert not second.reused and second.pid != first.pid
        assert k.healthy()
    finally:
        assert k.down()
    assert k.pid() is None and not k.healthy(timeout=1)
    status = subprocess.run(
        [sys.executable, "-m", "netpilot.cli", "dev", "kafka", "status", "--state-dir", str(tmp_path / "kafka")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 1 and "not running" in status.stdout


def _is_child(pid: int) -> bool:
    try:
        return os.waitpid(pid, os.WNOHANG) is not None
    except ChildProcessError:
        return False


def test_a_state_folder_keeps_its_port_and_refuses_another(tmp_path: Path) -> None:
    import json

    import pytest

    from netpilot.dev.kafka import DEFAULT_PORT, LocalKafka
    from netpilot.errors import KafkaSetupError

    assert LocalKafka(tmp_path / "new").port == DEFAULT_PORT
    assert LocalKafka(tmp_path / "new", port=39500).port == 39500
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "netpilot-kafka.json").write_text(json.dumps({"port": 39500, "version": "4.3.1"}))
    assert LocalKafka(folder).port == 39500 and LocalKafka(folder, port=39500).port == 39500
    with pytest.raises(KafkaSetupError, match="uses port 39500, not 39600"):
        LocalKafka(folder, port=39600)


@pytest.mark.kafka  # starts a cluster of its own
def test_a_three_node_cluster_takes_writes_with_a_node_killed_and_takes_it_back(tmp_path: Path) -> None:
    """`netpilot dev kafka up --nodes 3`: three nodes, one quorum, topics with three
    replicas by default; with one node SIGKILLed, acks=all writes still succeed
    (min.insync.replicas 2) once its partitions have new leaders; restarted, it rejoins
    and catches up; `status` and `down` know the folder is a cluster."""
    import signal
    import time

    from confluent_kafka import Producer
    from confluent_kafka.admin import NewTopic

    from netpilot.dev.kafka import LocalKafkaCluster
    from tests.conftest import ClusterView, broker_ports

    folder, port = tmp_path / "cluster", broker_ports(6)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "netpilot.cli", "dev", "kafka", *args, "--state-dir", str(folder)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=240)

    try:
        started = cli("up", "--nodes", "3", "--port", str(port), "--heap", "384m")
        bootstrap = ",".join(f"127.0.0.1:{port + 2 * i}" for i in range(3))
        assert started.returncode == 0 and f"bootstrap: {bootstrap}" in started.stdout, started.stderr
        status = cli("status")
        assert status.returncode == 0 and status.stdout.count("Kafka 4.3.1 running") == 3, status.stdout
        cluster = LocalKafkaCluster.existing(folder)
        assert cluster is not None and cluster.bootstrap == bootstrap
        view = ClusterView(bootstrap)  # metadata reads that survive the node's SIGKILL
        assert sorted(view.metadata().brokers) == [1, 2, 3]
        view.client.create_topics([NewTopic("t", 3)])["t"].result(30)  # replication: the cluster's default

        def partitions() -> dict[int, tuple[int, list[int], list[int]]]:
            md = view.metadata("t").topics["t"]
            return {p: (m.leader, sorted(m.replicas), sorted(m.isrs)) for p, m in md.partitions.items()}

        def wait(cond: object, what: str) -> None:
            deadline = time.monotonic() + 60
            while not cond():  # type: ignore[operator]
                assert time.monotonic() < deadline, f"{what}: {partitions()}"
                time.sleep(0.2)

        def every(pred: object) -> bool:
            """pred holds for each of the three partitions (a topic created a moment ago can
            be in a metadata answer with no partitions yet: all() of nothing is True)."""
            ps = partitions()
            return len(ps) == 3 and all(pred(*v) for v in ps.values())  # type: ignore[operator]

        wait(lambda: every(lambda _, r, i: r == [1, 2, 3] and i == [1, 2, 3]), "three replicas")
        victim = partitions()[0][0]
        pid = cluster.node(victim).pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        wait(lambda: every(lambda leader, _, __: leader not in (-1, victim)), "new leaders")
        delivered: list[object] = []
        p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
        for i in range(300):
            p.produce("t", str(i).encode(), on_delivery=lambda err, msg: delivered.append(err))
        assert p.flush(60) == 0 and delivered == [None] * 300
        del p  # no reconnect noise once the cluster is down
        assert cli("status").returncode == 1  # one node down
        cluster.node(victim).up(timeout=120)
        wait(lambda: every(lambda _, __, i: i == [1, 2, 3]), "back in sync")
    finally:
        stopped = cli("down")
    assert stopped.returncode == 0 and "stopped 3 node(s)" in stopped.stdout, stopped.stdout + stopped.stderr
    assert cli("status").returncode == 1
