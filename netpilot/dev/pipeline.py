"""The whole pipeline on one machine, as child processes of ``netpilot``: what `netpilot demo`
and the end-to-end test run.

    simulator --UDP--> collector --flows--> streams --aggregates/utilisation--> autopilot
                 \\--link-stats-------------^                                   |
    ClickHouse sink (chDB) and Prometheus exporter read every topic <----------/

Each component is its own ``netpilot`` process (as in production, and so chDB is opened by
the sink only), configured through ``NETPILOT_<COMPONENT>__*`` environment variables, with
its /metrics on a known port and its log in ``root/logs/<name>.log``. This module imports
no component code (netpilot/ never imports producers, streams or sinks): it only runs the
CLI. ``stop()`` sends SIGTERM to each child (reverse start order), then SIGKILL after a grace
period, so no process outlives the pipeline.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from netpilot.errors import NetpilotError
from netpilot.proc import stop_process
from netpilot.settings import KafkaSettings

NETPILOT = [sys.executable, "-m", "netpilot.cli"]
SCALED = ("collector", "streams", "autopilot", "sink-clickhouse")
"""Components ``PipelineOptions.instances`` runs several of."""
STOP_ORDER = ("injector", "collector", "streams", "autopilot", "sink-prometheus", "sink-clickhouse")


class PipelineError(NetpilotError):
    """A pipeline process failed to start or exited early; the message has its log tail."""


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class PipelineOptions:
    """Knobs a short run needs to change (everything else: the components' defaults)."""

    cycle_s: float = 10.0
    """autopilot cycle period."""
    hold_s: float = 60.0
    """autopilot hold: minimum life of an override."""
    allowed_lateness_s: float = 3.0
    """streams: how long a window waits for late flows (the simulator is never late)."""
    idle_after_s: float | None = None
    """streams: wall-clock seconds without flows after which a PoP counts as idle (None:
    the default)."""
    autopilot_mode: str = "observe"
    prometheus: bool = True
    """also run the Prometheus exporter."""
    injector: str | None = None
    """``apply``/``suggest``/``observe``: also run a BIRD per simulated router and the BGP
    injector talking to them; the simulator then steers traffic by the routes BIRD selected
    (the closed loop). None: no injector (open loop)."""
    extra: dict[str, dict[str, object]] = field(default_factory=dict)
    """More settings per component (``{"autopilot": {"policy__split_enabled": False}}``),
    passed as ``NETPILOT_<COMPONENT>__<FIELD>``."""
    instances: int = 1
    """Processes of each scaled component (SCALED): collectors sharing the UDP ports
    (SO_REUSEPORT), streams and autopilot workers in one faust group each, ClickHouse sinks
    in one consumer group, each with its own chDB store (chDB locks its path: one process
    per store). 1: one process each, named by the component alone."""


class Child:
    """One ``netpilot`` subcommand as a child process, its output in a log file."""

    def __init__(
        self, name: str, args: list[str], env: dict[str, str], log: Path, metrics_port: int | None = None
    ) -> None:
        self.name, self.log, self.metrics_port = name, log, metrics_port
        self.args, self.env = args, env
        self.starts = 0
        log.parent.mkdir(parents=True, exist_ok=True)
        self.proc = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        self.starts += 1
        with open(self.log, "ab") as logf:
            # a new session: Ctrl-C on the demo's terminal reaches the demo only, which then
            # stops the children in order (instead of all of them racing at once)
            return subprocess.Popen(
                [*NETPILOT, *self.args],
                env={**os.environ, **self.env},
                stdout=logf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def kill(self) -> int | None:
        """SIGKILL the process (a crash: no clean-up, no goodbye to the group) and reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.wait(10)

    def restart(self) -> None:
        """Start the same command again (same environment, log and metrics port), as a
        supervisor would after a crash. The previous process must have exited."""
        if self.proc.poll() is None:
            raise PipelineError(f"{self.name} is still running (pid {self.proc.pid})")
        self.proc = self._spawn()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def healthy(self) -> bool:
        if self.metrics_port is None:
            return self.alive()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/healthz", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def metrics(self) -> str:
        """The child's /metrics text ("" when it does not answer)."""
        if self.metrics_port is None:
            return ""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2) as r:
                return r.read().decode()
        except OSError:
            return ""

    def sample(self, name: str, **labels: str) -> float | None:
        """The sum of a metric's samples whose labels include ``labels`` (None: no answer)."""
        text = self.metrics()
        if not text:
            return None
        total = 0.0
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    total += s.value
        return total

    def stop(self, grace_s: float = 30.0) -> int | None:
        # every child is a netpilot service: one that does not stop in time writes its
        # threads' stacks to its log before the SIGKILL
        return stop_process(self.proc, grace_s, kill_wait_s=10, dump_stacks=True)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Pipeline:
    """Start, feed and stop the pipeline for one scenario; ``root`` holds logs, chDB and files."""

    def __init__(
        self, root: Path, kafka: KafkaSettings, scenario: Path, options: PipelineOptions = PipelineOptions()
    ) -> None:
        self.root, self.kafka, self.scenario, self.options = root, kafka, scenario, options
        self.net_dir = root / "network"
        n = options.instances
        if n < 1:
            raise PipelineError(f"instances must be >= 1, not {n}")
        # chDB takes a lock on its path ("Another server instance in same directory is already
        # running"): several sinks need a store each; queries read all of them
        base = (root / "chdb").resolve()
        self.stores = [base] if n == 1 else [base / f"sink-clickhouse-{i}" for i in range(1, n + 1)]
        self.chdb = self.stores[0]
        self.children: dict[str, Child] = {}
        self.killed: dict[str, float] = {}
        """Children SIGKILLed on purpose (``kill``): name -> when (time.time())."""
        self.netflow_port = free_port(socket.SOCK_DGRAM)
        self.sflow_port = free_port(socket.SOCK_DGRAM)
        self.run_id = uuid.uuid4().hex[:8]
        self.simulation: subprocess.Popen[str] | None = None
        self.birds: dict[str, object] = {}

    # -- environment -----------------------------------------------------------------------
    def _env(
        self, component: str, metrics_port: int | None, client_id: str | None = None, **fields: object
    ) -> dict[str, str]:
        env = {
            "NETPILOT_KAFKA__BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers,
            "NETPILOT_KAFKA__TOPIC_PREFIX": self.kafka.topic_prefix,
            "NETPILOT_LOG__FORMAT": "json",
        }
        if client_id is not None:  # tells the group's members apart (demo: who holds what)
            env["NETPILOT_KAFKA__CLIENT_ID"] = client_id
        prefix = f"NETPILOT_{component.upper().replace('-', '_')}__"
        if metrics_port is not None:
            env[prefix + "METRICS__LISTEN"] = f"127.0.0.1:{metrics_port}"
        env.update({prefix + k.upper(): str(v) for k, v in fields.items()})
        return env

    def _cli(self, *args: str, timeout: float = 120) -> str:
        """A short ``netpilot`` command; raise with its output if it fails."""
        env = {**os.environ, **self._env("none", None)}
        r = subprocess.run([*NETPILOT, *args], env=env, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise PipelineError(f"`netpilot {' '.join(args)}` failed ({r.returncode}):\n{r.stdout}{r.stderr}")
        return r.stdout

    # -- steps ---------------------------------------------------------------------------
    @property
    def inventory_file(self) -> Path:
        return self.net_dir / "inventory.yaml"

    @property
    def routes_file(self) -> Path:
        return self.net_dir / "routes.yaml"

    def publish_network(self) -> None:
        """The simulator's inventory and routes files -> their compacted topics."""
        self._cli("simulate", "--scenario", str(self.scenario), "--out", str(self.net_dir), "--files-only")
        self._cli("inventory", "publish", str(self.inventory_file))
        self._cli("routes", "load", str(self.routes_file))

    def names(self, component: str) -> list[str]:
        """The children running ``component``: itself, or ``<component>-<i>`` when scaled."""
        n = self.options.instances
        if component not in SCALED or n == 1:
            return [component]
        return [f"{component}-{i}" for i in range(1, n + 1)]

    def group_id(self, component: str) -> str:
        """The Kafka consumer group of a scaled component (faust's is the topic prefix + app id)."""
        tag = self.run_id
        return {
            "sink-clickhouse": f"netpilot-sink-clickhouse-{tag}",
            "streams": f"{self.kafka.topic_prefix}netpilot-streams-{tag}",
            "autopilot": f"{self.kafka.topic_prefix}netpilot-autopilot-{tag}",
        }[component]

    def start(self, timeout: float = 150.0) -> None:
        """Start every component and wait until each says it is healthy. Several instances
        of a component start together, as an orchestrator starts replicas."""
        o, logs, tag = self.options, self.root / "logs", self.run_id
        scaled = o.instances > 1

        def data_dir(component: str, name: str) -> Path:
            return self.root / component if not scaled else self.root / component / name

        specs: list[tuple[str, list[str], str, dict[str, object]]] = []
        for i, name in enumerate(self.names("sink-clickhouse")):
            specs.append(
                (
                    name,
                    ["sink", "clickhouse", "run"],
                    "sink-clickhouse",
                    {
                        "dsn": f"chdb://{self.stores[i]}",
                        "group_id": self.group_id("sink-clickhouse"),
                        # static membership: the child restarted (same env) is the same member
                        "group_instance_id": f"{name}-{tag}",
                    },
                )
            )
        for name in self.names("streams"):
            specs.append(
                (
                    name,
                    ["streams", "run"],
                    "streams",
                    {
                        "app_id": f"netpilot-streams-{tag}",
                        "group_instance_id": f"{name}-{tag}",
                        "data_dir": data_dir("streams", name),
                        "allowed_lateness_s": o.allowed_lateness_s,
                        **({} if o.idle_after_s is None else {"idle_after_s": o.idle_after_s}),
                    },
                )
            )
        for name in self.names("autopilot"):
            specs.append(
                (
                    name,
                    ["autopilot", "run"],
                    "autopilot",
                    {
                        "app_id": f"netpilot-autopilot-{tag}",
                        "group_instance_id": f"{name}-{tag}",
                        "data_dir": data_dir("autopilot", name),
                        "policy__cycle_s": o.cycle_s,
                        "policy__hold_s": o.hold_s,
                        "policy__mode": o.autopilot_mode,
                    },
                )
            )
        for name in self.names("collector"):
            # several collectors bind the same ports (SO_REUSEPORT, collector.reuse_port)
            specs.append(
                (
                    name,
                    ["collector", "run"],
                    "collector",
                    {
                        "inventory_file": self.inventory_file,
                        "routes_file": self.routes_file,
                        "listen_address": "127.0.0.1",
                        "netflow_port": self.netflow_port,
                        "sflow_port": self.sflow_port,
                    },
                )
            )
        if o.prometheus:
            specs.append(
                (
                    "sink-prometheus",
                    ["sink", "prometheus", "run"],
                    "sink-prometheus",
                    {"group_id": f"netpilot-sink-prometheus-{tag}"},
                )
            )
        if o.injector:
            specs.append(
                (
                    "injector",
                    ["injector", "run", "--config", str(self._start_routers())],
                    "injector",
                    {"mode": o.injector, "run_dir": self.root / "injector", "cycle_s": o.cycle_s},
                )
            )
        for name, args, component, fields in specs:
            self._spawn(name, args, component, fields, logs)
        self.wait_healthy(timeout)
        if scaled:
            # the live view and the summary list the instances of a component together
            order = [n for c in (*SCALED, "sink-prometheus", "injector") for n in self.names(c)]
            self.children = {n: self.children[n] for n in order if n in self.children}

    def _spawn(self, name: str, args: list[str], component: str, fields: dict[str, object], logs: Path) -> None:
        port = free_port()
        fields = {**fields, **self.options.extra.get(component, {})}
        client_id = f"netpilot-{name}" if component in SCALED and self.options.instances > 1 else None
        env = self._env(component, port, client_id, **fields)
        self.children[name] = Child(name, args, env, self.root / "logs" / f"{name}.log", port)

    def kill(self, name: str) -> int | None:
        """SIGKILL one child (a crash, no goodbye to its group), recorded so that
        ``failed()`` does not count it; it stays dead until the pipeline stops."""
        self.killed[name] = time.time()
        return self.children[name].kill()

    @property
    def routers_file(self) -> Path:
        return self.root / "routers.yaml"

    def _start_routers(self) -> Path:
        """A real BIRD per simulated router (loopback, no privileges); returns the
        injector's configuration naming them, and writes the simulator's ``--routers``."""
        import random

        import yaml

        from netpilot.dev.bird import BirdRouter, BirdRouterSpec

        # the scenario file names the routers (read as data: netpilot/ imports no component)
        names = [r["name"] for p in yaml.safe_load(self.scenario.read_text())["pops"] for r in p["routers"]]
        net = random.randint(100, 250)
        routers, readers = {}, {}
        for i, name in enumerate(names):
            # a port each: BIRD listens on the wildcard address whatever ``local`` says
            spec = BirdRouterSpec(name, f"127.0.{net}.{i + 2}", free_port())
            bird = BirdRouter(spec, self.root / "routers").start()
            self.birds[name] = bird
            rib = {"kind": "bird", "socket": str(bird.socket)}
            routers[name] = {"neighbor": spec.address, "port": spec.port, "local_address": "127.0.0.1", "rib": rib}
            readers[name] = rib
        self.routers_file.write_text(yaml.safe_dump({"community": "64496:666", "routers": readers}))
        cfg = self.root / "injector.yaml"
        cfg.write_text(yaml.safe_dump({"injector": {"routers": routers, "community": "64496:666"}}))
        return cfg

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        waiting = dict(self.children)
        while waiting:
            for name, child in list(waiting.items()):
                if not child.alive():
                    raise PipelineError(
                        f"{name} exited ({child.proc.returncode}) while starting; log {child.log}:\n{child.tail()}"
                    )
                if child.healthy():
                    del waiting[name]
            if waiting and time.monotonic() > deadline:
                raise PipelineError(
                    f"not healthy after {timeout:.0f}s: {sorted(waiting)}; logs in {self.root / 'logs'}"
                )
            time.sleep(0.5)

    def simulate(self, duration: float | None = None, fast: bool = False) -> subprocess.Popen[str]:
        """Start the scenario (real time unless ``fast``); link counters go to Kafka."""
        args = [
            *NETPILOT,
            "simulate",
            "--scenario",
            str(self.scenario),
            "--out",
            str(self.net_dir),
            "--netflow",
            f"127.0.0.1:{self.netflow_port}",
            "--sflow",
            f"127.0.0.1:{self.sflow_port}",
            "--kafka",
            self.kafka.bootstrap_servers,
            "--topic-prefix",
            self.kafka.topic_prefix,
        ]
        if duration:
            args += ["--duration", str(duration)]
        if self.birds:
            args += ["--routers", str(self.routers_file)]
        if fast:
            args.append("--fast")
        log = open(self.root / "logs" / "simulator.log", "ab")  # noqa: SIM115 - closed with the child
        self.simulation = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=log, text=True, stdin=subprocess.DEVNULL, start_new_session=True
        )
        log.close()
        return self.simulation

    def wait_flows_stored(self, timeout: float = 120.0) -> None:
        """Wait until ClickHouse holds every flows message the collector published and the
        rest the pipeline wrote so far: the sink has consumed at least as many flows messages
        (replays count again), buffers nothing and lags on no topic. Call it once the
        simulator has stopped; raises PipelineError at the deadline or if a child died.
        With several instances the counts are summed over them (exact only if none was
        killed: a dead collector's last count is lost; the demo counts the topic instead)."""
        collectors = [self.children[n] for n in self.names("collector")]
        sinks = [self.children[n] for n in self.names("sink-clickhouse") if n not in self.killed]
        deadline = time.monotonic() + timeout
        state: tuple[float | None, ...] = ()
        while time.monotonic() < deadline:
            if self.failed():
                raise PipelineError(f"exited while draining: {self.failed()}")
            published = _total(
                c.sample("netpilot_collector_messages_published_total", kind="flows") for c in collectors
            )
            consumed = _total(s.sample("netpilot_sink_clickhouse_messages_total", topic="flows") for s in sinks)
            pending = _total(s.sample("netpilot_sink_clickhouse_pending_rows") for s in sinks)
            lag = _total(s.sample("netpilot_sink_clickhouse_consumer_lag_messages") for s in sinks)  # every topic
            state = (published, consumed, pending, lag)
            if (
                published is not None
                and consumed is not None
                and published > 0
                and consumed >= published
                and pending == 0
                and lag == 0
            ):
                return
            time.sleep(0.2)
        raise PipelineError(
            f"flows not all stored within {timeout:g} s (published, consumed, pending rows, lag) = {state}"
        )

    def wait_sinks_idle(self, timeout: float = 60.0) -> bool:
        """Wait until every running ClickHouse sink buffers nothing and lags on no topic
        (what it was given is stored); False at the deadline."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sinks = [self.children[n] for n in self.names("sink-clickhouse") if n not in self.killed]
            pending = _total(s.sample("netpilot_sink_clickhouse_pending_rows") for s in sinks)
            lag = _total(s.sample("netpilot_sink_clickhouse_consumer_lag_messages") for s in sinks)
            if pending == 0 and lag == 0:
                return True
            time.sleep(0.5)
        return False

    def failed(self) -> list[str]:
        """Components that exited while they should be running."""
        return [name for name, c in self.children.items() if not c.alive() and name not in self.killed]

    def stop(self) -> dict[str, int | None]:
        """SIGTERM every child (the simulator first, the sink last), SIGKILL after 30 s.

        A second Ctrl-C while stopping is ignored: the children run in their own sessions
        (so the first Ctrl-C reaches only us), and abandoning the stop would orphan them."""
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            return self._stop_children()
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)

    def _stop_children(self) -> dict[str, int | None]:
        codes: dict[str, int | None] = {}
        if self.simulation is not None:
            stop_process(self.simulation, grace_s=15, kill_wait_s=10)
        for name in (n for component in STOP_ORDER for n in self.names(component)):
            child = self.children.get(name)
            if child is not None:
                codes[name] = child.stop()
        for bird in self.birds.values():
            bird.stop()  # type: ignore[attr-defined]
        self.birds.clear()
        return codes

    def query(self, sql: str, store: int = 0) -> list[list[str]]:
        """One read-only statement on a sink's chDB (``stores[store]``), once the sinks have
        stopped (chDB is opened by one process at a time)."""
        if any(c.alive() for n in self.names("sink-clickhouse") if (c := self.children.get(n)) is not None):
            raise PipelineError("query() needs the ClickHouse sinks stopped (embedded chDB)")
        out = self._cli(
            "sink", "clickhouse", "query", sql, "--format", "TabSeparated", "--config", str(self.query_config(store))
        )
        return [line.split("\t") for line in out.splitlines() if line]

    def query_config(self, store: int = 0) -> Path:
        """A config file naming ``stores[store]`` (for ``netpilot sink clickhouse query -c``)."""
        name = "query.yaml" if len(self.stores) == 1 else f"query-sink-clickhouse-{store + 1}.yaml"
        cfg = self.root / name
        cfg.write_text(f"sink-clickhouse:\n  dsn: chdb://{self.stores[store]}\n")
        return cfg

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _total(values: Iterable[float | None]) -> float | None:
    """The sum, or None if any child did not answer."""
    out = 0.0
    for v in values:
        if v is None:
            return None
        out += v
    return out
