"""A real, local Apache Kafka (KRaft, combined broker+controller nodes) for dev and tests: one
node (``LocalKafka``), or a cluster of several (``LocalKafkaCluster``: replication and leader
changes, as on a production cluster).

Kafka is resolved from Maven Central with Maven (``org.apache.kafka:kafka_2.13`` and its
runtime dependencies plus a log4j2 backend) into a cache folder, so nothing but Java and
Maven is assumed. The broker listens on 127.0.0.1 only, with its log in a file beside its
data. ``up`` is idempotent: it reuses a healthy broker and replaces a dead one; a file lock
makes concurrent ``up`` calls (parallel test runs) safe.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netpilot.errors import KafkaSetupError
from netpilot.proc import stop_pid

KAFKA_VERSION = "4.3.1"
SCALA_VERSION = "2.13"
LOG4J_VERSION = "2.24.3"
SLF4J_VERSION = "2.0.17"

DEFAULT_PORT = 9092
DEFAULT_HEAP = "512m"
STOP_GRACE_S = 30.0
"""How long a SIGTERMed broker gets for its controlled shutdown before SIGKILL."""
PORT_FREE_WAIT_S = 10.0
"""How long `up` waits for the broker's ports to free up before it says another process holds them."""
CLUSTER_FILE = "netpilot-cluster.json"
"""In a cluster's folder: its id, its nodes' directory ids and first port."""


def cache_root() -> Path:
    env = os.environ.get("NETPILOT_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "netpilot"


def default_state_dir() -> Path:
    env = os.environ.get("NETPILOT_KAFKA_DIR")
    return Path(env) if env else Path.cwd() / ".netpilot" / "kafka"


_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.netpilot</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>{kafka}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_{scala}</artifactId><version>{kafka}</version></dependency>
    <!-- Kafka 4 logs through slf4j 2 -> log4j2; the kafka_2.13 pom brings no backend. -->
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>{slf4j}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>{log4j}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>{log4j}</version></dependency>
  </dependencies>
</project>
"""

_LOG4J2 = """status = warn
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = {log}
appender.file.filePattern = {log}.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 50MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
"""


def resolve_kafka(version: str = KAFKA_VERSION, quiet: bool = True) -> Path:
    """Resolve Kafka and its runtime classpath with Maven; return the folder of jars."""
    root = cache_root() / f"kafka-{version}"
    libs = root / "libs"
    marker = root / "resolved.json"
    if marker.exists() and libs.is_dir():
        return libs
    if shutil.which("mvn") is None:
        raise KafkaSetupError("Maven (mvn) is needed to fetch Kafka: apt-get install maven")
    if shutil.which("java") is None:
        raise KafkaSetupError("Java 17+ is needed to run Kafka: apt-get install openjdk-17-jre-headless")
    root.mkdir(parents=True, exist_ok=True)
    (root / "pom.xml").write_text(
        _POM.format(kafka=version, scala=SCALA_VERSION, log4j=LOG4J_VERSION, slf4j=SLF4J_VERSION)
    )
    tmp = root / "libs.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [
        "mvn",
        "-B",
        "-f",
        str(root / "pom.xml"),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={tmp}",
        "-DincludeScope=runtime",
    ]
    if quiet:
        cmd.insert(1, "-q")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise KafkaSetupError(f"Maven could not resolve Kafka {version}:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    jars = sorted(p.name for p in tmp.glob("*.jar"))
    if f"kafka_{SCALA_VERSION}-{version}.jar" not in jars:
        raise KafkaSetupError(f"Maven finished but kafka_{SCALA_VERSION}-{version}.jar is missing in {tmp}")
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    marker.write_text(json.dumps({"version": version, "jars": jars}, indent=1))
    return libs


@dataclass(frozen=True)
class ClusterMember:
    """A node's place in a cluster of local nodes (see ``LocalKafkaCluster``)."""

    node_id: int
    cluster_id: str
    initial_controllers: str
    """``id@host:port:directory-id`` of every controller, the same for all nodes: formatting
    with it (KIP-853) gives the cluster its quorum from the start."""
    bootstrap_controllers: str
    replication: int
    """Replication factor of the internal topics and of topics created without one."""


@dataclass(frozen=True)
class BrokerInfo:
    bootstrap: str
    pid: int
    version: str | None
    process_roles: str | None
    listeners: str | None
    cluster_id: str | None
    state_dir: Path
    log_file: Path
    reused: bool = False

    def describe(self) -> str:
        mode = "KRaft" if self.process_roles and "controller" in self.process_roles else "unknown mode"
        return (
            f"Kafka {self.version or '?'} running (pid {self.pid}) in {mode} "
            f"(process.roles={self.process_roles})\n"
            f"  bootstrap: {self.bootstrap}\n  listeners: {self.listeners}\n"
            f"  cluster id: {self.cluster_id}\n  data: {self.state_dir / 'data'}\n  log: {self.log_file}"
        )


class LocalKafka:
    """One local broker described by a state folder (config, data, log, pid)."""

    def __init__(
        self,
        state_dir: Path | None = None,
        port: int | None = None,
        heap: str = DEFAULT_HEAP,
        version: str = KAFKA_VERSION,
        member: ClusterMember | None = None,
    ) -> None:
        self.state_dir = Path(state_dir or default_state_dir()).resolve()
        self.version = version
        self.heap = heap
        self.member = member
        meta = self._read_meta()
        # A state folder remembers its port so `status`/`down` need no flags. It cannot move:
        # KRaft storage formatted --standalone records the controller's endpoint.
        remembered = int(meta["port"]) if "port" in meta else None
        if port is not None and remembered is not None and port != remembered:
            raise KafkaSetupError(
                f"the broker in {self.state_dir} uses port {remembered}, not {port}: use another "
                f"--state-dir for port {port}, or `netpilot dev kafka down --wipe` to start over"
            )
        self.port = remembered or port or DEFAULT_PORT
        self.controller_port = self.port + 1

    # -- paths -------------------------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "server.log"

    @property
    def _pid_file(self) -> Path:
        return self.state_dir / "kafka.pid"

    @property
    def _meta_file(self) -> Path:
        return self.state_dir / "netpilot-kafka.json"

    def _read_meta(self) -> dict[str, Any]:
        try:
            return json.loads(self._meta_file.read_text())
        except (OSError, ValueError):
            return {}

    @contextmanager
    def _lock(self) -> Iterator[None]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- process -----------------------------------------------------------------------
    def pid(self) -> int | None:
        try:
            pid = int(self._pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        # A recycled pid is not our broker: check its command line.
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        if b"kafka.Kafka" not in cmdline or str(self.state_dir).encode() not in cmdline:
            return None
        return pid

    def healthy(self, timeout: float = 5.0) -> bool:
        from confluent_kafka.admin import AdminClient

        try:
            # log_level 0: probing a broker that is still starting is expected to fail;
            # do not spray librdkafka's connection errors over the terminal.
            admin = AdminClient(
                {"bootstrap.servers": self.bootstrap, "log_level": 0, "socket.timeout.ms": str(int(timeout * 1000))}
            )
            admin.list_topics(timeout=timeout)
            return True
        except Exception:  # noqa: BLE001 - any failure means "not healthy"
            return False

    def up(self, timeout: float = 120.0) -> BrokerInfo:
        with self._lock():
            pid = self.pid()
            if pid is not None:
                if self.healthy():
                    return self.info(reused=True)
                stop_pid(pid, STOP_GRACE_S)  # alive but not answering: replace it
            libs = self._prepare()
            return self._start(libs, timeout)

    def _prepare(self) -> Path:
        """Kafka's jars, this node's config written and its storage formatted."""
        libs = resolve_kafka(self.version)
        self._write_config()
        if not (self.state_dir / "data" / "meta.properties").exists():
            self._format(libs)
        return libs

    def _write_config(self) -> None:
        data = self.state_dir / "data"
        m = self.member
        rf, min_isr = (m.replication, max(1, min(2, m.replication - 1))) if m else (1, 1)
        props = {
            "process.roles": "broker,controller",
            "node.id": str(m.node_id if m else 1),
            "controller.quorum.bootstrap.servers": m.bootstrap_controllers
            if m
            else f"127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(data),
            "auto.create.topics.enable": "false",
            "num.partitions": "1",
            # a cluster as strimzi/render.py configures one: acks=all waits for 2 of 3 replicas
            "default.replication.factor": str(rf),
            "min.insync.replicas": str(min_isr),
            "offsets.topic.replication.factor": str(rf),
            "offsets.topic.num.partitions": "6",
            "transaction.state.log.replication.factor": str(rf),
            "transaction.state.log.min.isr": str(min_isr),
            "transaction.state.log.num.partitions": "6",
            "share.coordinator.state.topic.replication.factor": str(rf),
            "share.coordinator.state.topic.min.isr": str(min_isr),
            "group.initial.rebalance.delay.ms": "0",
            "message.max.bytes": str(8 * 1024 * 1024),
            "log.retention.check.interval.ms": "60000",
            "num.network.threads": "2",
            "num.io.threads": "4",
        }
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "server.properties").write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (self.state_dir / "log4j2.properties").write_text(_LOG4J2.format(log=self.log_file))
        self._meta_file.write_text(json.dumps({"port": self.port, "version": self.version}))

    def _java(self, libs: Path, main: str, *args: str, heap: str | None = None) -> list[str]:
        cmd = ["java"]
        if heap:
            cmd += [f"-Xmx{heap}", f"-Xms{heap}"]
        return cmd + [
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.state_dir / 'log4j2.properties'}",
            "-cp",
            f"{libs}/*",
            main,
            *args,
        ]

    def _format(self, libs: Path) -> None:
        m = self.member
        cluster_id = m.cluster_id if m else base64_uuid()
        quorum = f"--initial-controllers={m.initial_controllers}" if m else "--standalone"
        # "--cluster-id=ID": a base64 id can start with "-", which argparse would take for an option
        cmd = self._java(
            libs,
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={cluster_id}",
            "-c",
            str(self.state_dir / "server.properties"),
            quorum,
        )
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise KafkaSetupError(f"formatting KRaft storage failed:\n{proc.stdout}{proc.stderr}")

    def _start(self, libs: Path, timeout: float) -> BrokerInfo:
        return self._await(self._spawn(libs), timeout)

    def _spawn(self, libs: Path) -> subprocess.Popen[bytes]:
        # Another broker (another folder) answering on our port would pass the health check
        # while ours dies on "Address already in use": refuse early and say who to stop.
        for port in (self.port, self.controller_port):
            if not _wait_port_free(port, PORT_FREE_WAIT_S):
                raise KafkaSetupError(
                    f"127.0.0.1:{port} is already in use by another process; stop it or choose "
                    f"another --port (this broker's folder: {self.state_dir})"
                )
        out = open(self.state_dir / "kafka.out", "ab")  # noqa: SIM115 - the broker process writes it
        cmd = self._java(libs, "kafka.Kafka", str(self.state_dir / "server.properties"), heap=self.heap)
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=self.state_dir,
        )
        self._pid_file.write_text(str(proc.pid))
        return proc

    def _await(self, proc: subprocess.Popen[bytes], timeout: float) -> BrokerInfo:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if proc.poll() is not None:
                raise KafkaSetupError(
                    f"Kafka exited with code {proc.returncode} during start-up; last log lines:\n{self.tail(30)}"
                )
            if self.healthy(timeout=2.0):
                meta = self._read_meta()
                meta.update(running_pid=proc.pid, running_version=self._version_from_log())
                self._meta_file.write_text(json.dumps(meta))
                return self.info()
            time.sleep(0.5)
        stop_pid(proc.pid, STOP_GRACE_S)
        raise KafkaSetupError(f"Kafka did not answer within {timeout:.0f}s; last log lines:\n{self.tail(30)}")

    def down(self, wipe: bool = False) -> bool:
        """Stop the broker (SIGTERM: a clean controlled shutdown). Returns whether one ran."""
        with self._lock():
            pid = self.pid()
            if pid is not None:
                stop_pid(pid, STOP_GRACE_S)
            self._pid_file.unlink(missing_ok=True)
            if wipe:
                shutil.rmtree(self.state_dir / "data", ignore_errors=True)
            return pid is not None

    def info(self, reused: bool = False) -> BrokerInfo:
        from confluent_kafka.admin import AdminClient, ConfigResource

        pid = self.pid()
        if pid is None:
            raise KafkaSetupError(f"no broker running for {self.state_dir}")
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        md = admin.list_topics(timeout=10)
        broker_id = str(self.member.node_id if self.member else next(iter(md.brokers)))
        res = ConfigResource(ConfigResource.Type.BROKER, broker_id)
        cfg = admin.describe_configs([res])[res].result(timeout=10)
        return BrokerInfo(
            bootstrap=self.bootstrap,
            pid=pid,
            version=self._version_from_log(),
            process_roles=cfg["process.roles"].value if "process.roles" in cfg else None,
            listeners=cfg["listeners"].value if "listeners" in cfg else None,
            cluster_id=md.cluster_id,
            state_dir=self.state_dir,
            log_file=self.log_file,
            reused=reused,
        )

    def _version_from_log(self) -> str | None:
        # The broker logs its own version at start-up (AppInfoParser). The log rolls over on a
        # long-lived broker, so what was read at start-up is also kept in the meta file.
        found: list[str] = []
        for path in (self.log_file, *sorted(self.state_dir.glob("server.log.*"))):
            try:
                found += re.findall(r"Kafka version: (\S+)", path.read_text(errors="replace"))
            except OSError:
                continue
            if found:
                break
        if found:
            return found[-1]
        meta = self._read_meta()
        if meta.get("running_version") and meta.get("running_pid") == self.pid():
            return str(meta["running_version"])
        return self._version_from_classpath()

    def _version_from_classpath(self) -> str | None:
        """The kafka_<scala>-<version>.jar on the running broker's classpath."""
        pid = self.pid()
        if pid is None:
            return None
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        for i, arg in enumerate(args[:-1]):
            if arg == b"-cp":
                libs = Path(args[i + 1].decode().rstrip("*").rstrip("/"))
                for jar in libs.glob(f"kafka_{SCALA_VERSION}-*.jar"):
                    return jar.name[len(f"kafka_{SCALA_VERSION}-") : -len(".jar")]
        return None

    def tail(self, lines: int = 50) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log yet)"


class LocalKafkaCluster:
    """``nodes`` local nodes, each broker and controller, in ``state_dir/node-<id>``: node i
    (from 1) listens on ``port + 2 (i - 1)``, its controller on the port after. Topics get
    ``replication`` replicas by default (and the internal ones always), ``min.insync.replicas``
    2: one node can be stopped, killed or restarted at a time while producers with acks=all
    go on, and leaders move between nodes as on a production cluster.

    The cluster's identity (its id, the nodes' directory ids) is written into ``state_dir``
    when it is first created, so nodes restarted later rejoin the same cluster."""

    def __init__(
        self,
        state_dir: Path,
        port: int,
        nodes: int = 3,
        heap: str = "384m",
        version: str = KAFKA_VERSION,
    ) -> None:
        if nodes < 1:
            raise KafkaSetupError(f"a cluster needs at least one node, not {nodes}")
        self.state_dir = Path(state_dir).resolve()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        ident_file = self.state_dir / CLUSTER_FILE
        try:
            ident = json.loads(ident_file.read_text())
        except (OSError, ValueError):
            ident = {"cluster_id": base64_uuid(), "directories": [base64_uuid() for _ in range(nodes)], "port": port}
            ident_file.write_text(json.dumps(ident))
        if ident["port"] != port or len(ident["directories"]) != nodes:
            raise KafkaSetupError(
                f"the cluster in {self.state_dir} has {len(ident['directories'])} nodes from port "
                f"{ident['port']}: use another folder for {nodes} nodes from port {port}"
            )
        ports = [port + 2 * i for i in range(nodes)]
        controllers = ",".join(
            f"{i + 1}@127.0.0.1:{p + 1}:{d}" for i, (p, d) in enumerate(zip(ports, ident["directories"]))
        )
        bootstrap_controllers = ",".join(f"127.0.0.1:{p + 1}" for p in ports)
        self.nodes = [
            LocalKafka(
                self.state_dir / f"node-{i + 1}",
                port=p,
                heap=heap,
                version=version,
                member=ClusterMember(i + 1, ident["cluster_id"], controllers, bootstrap_controllers, min(3, nodes)),
            )
            for i, p in enumerate(ports)
        ]

    @classmethod
    def existing(cls, state_dir: Path | None = None) -> LocalKafkaCluster | None:
        """The cluster created in ``state_dir`` before (None: that folder holds no cluster)."""
        folder = Path(state_dir or default_state_dir())
        try:
            ident = json.loads((folder / CLUSTER_FILE).read_text())
        except (OSError, ValueError):
            return None
        return cls(folder, int(ident["port"]), len(ident["directories"]))

    @property
    def bootstrap(self) -> str:
        return ",".join(n.bootstrap for n in self.nodes)

    def node(self, node_id: int) -> LocalKafka:
        return self.nodes[node_id - 1]

    def up(self, timeout: float = 180.0) -> str:
        """Start every node not running, all at once (a lone node waits for a quorum), and
        wait until each answers; returns the bootstrap list."""
        started = []
        for n in self.nodes:
            if n.pid() is None:
                started.append((n, n._spawn(n._prepare())))
        deadline = time.monotonic() + timeout
        for n, proc in started:
            n._await(proc, max(1.0, deadline - time.monotonic()))
        return self.bootstrap

    def down(self) -> None:
        """SIGTERM every node at once: one by one, the last nodes would wait for a quorum
        that has gone (their controlled shutdown needs the controller) until SIGKILLed."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(lambda n: n.down(), self.nodes))


def base64_uuid() -> str:
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _wait_port_free(port: int, timeout: float) -> bool:
    """Whether ``port`` is free, or frees up within ``timeout``: a broker that was just
    SIGKILLed holds its listening socket until the JVM's last thread has exited, a moment
    after its pid already reads as gone (the main thread is a zombie, the others still
    tear down)."""
    deadline = time.monotonic() + timeout
    while not _port_free(port):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def _port_free(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
