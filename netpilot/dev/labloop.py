"""The closed loop in the routing lab: the whole pipeline pointed at ``netpilot dev lab``, a
scripted surge on the PNI, and what happened, step by step (``make lab-demo`` and
``tests/netpilot/dev/test_labloop.py``).

    src --iperf3--> pop (FRR) --pni0/transit0/ix0--> peers        (the lab, in namespaces)
         softflowd per egress veth --IPFIX--> collector --flows--> streams --> autopilot
         snmpd in the pop --SNMP--> poller --link-stats----------^               |
         FRR bgpd <--iBGP-- ExaBGP in nms <-- injector <--recommendations--------/

The pipeline is :class:`netpilot.dev.pipeline.Pipeline` with the lab's inventory, a routes
file made from the peers' announcements, the injector's ExaBGP in the lab's ``nms``
namespace and the SNMP poller added. The story (:func:`run_story`) waits on conditions
with deadlines and records each step's time; the kernel's transmit counters and each
prefix's egress are sampled every second for the plot. Everything runs as child processes
or namespaced daemons; ``LabLoop.close`` stops them all, also after an error or Ctrl-C.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from netpilot import catalog
from netpilot.dev.lab import LAB_POP, PEERS, ROUTER, SNMP_COMMUNITY, Lab, host, peer
from netpilot.dev.pipeline import Child, Pipeline, PipelineError, PipelineOptions, free_port
from netpilot.settings import KafkaSettings

PNI = peer("pni")
PNI_TRIGGER = 0.90  # the policy's default trigger for peer type pni
COMMUNITY = "64496:666"


@dataclass(frozen=True)
class Stream:
    """One iperf3 UDP client: ``mbit`` of payload to ``dst`` (a server port of the lab)."""

    dst: str
    port: int
    mbit: float


@dataclass(frozen=True)
class StoryOptions:
    cycle_s: float = 5.0
    hold_s: float = 40.0
    """the autopilot's hold: short, so the WITHDRAW comes soon after the surge, but longer
    than the flows' lag plus the release window (4 cycles): until the moved prefix's flows
    on its new link have arrived, the autopilot's U0 of the PNI misses it, and a 20 s hold
    once released every override mid-surge (docs/lab.md)."""
    lateness_s: float = 5.0
    """streams' allowed lateness: above softflowd's longest record (maxlife 2 s + 1 s
    expiry check) plus its export delay."""
    demand_window_s: float = 30.0
    snmp_interval_s: float = 2.0
    baseline: tuple[Stream, ...] = (
        Stream("198.18.10.1", 5201, 1.0),
        Stream("198.18.11.1", 5201, 1.0),
        Stream("198.18.12.1", 5201, 1.0),
    )
    """3 Mbit/s on the 20 Mbit/s PNI (0.15) before and after the surge; every PNI prefix
    keeps some traffic, so whichever is moved can be seen coming back."""
    surge: tuple[Stream, ...] = (Stream("198.18.10.1", 5202, 19.0),)
    """19 Mbit/s more to one prefix: 22 Mbit/s offered to the PNI, which sends 20 and drops
    the rest. The flows (taken after the shaper) see 20, so the autopilot under-estimates
    every prefix by 20/22 and relieves the PNI to its target (0.85) in its own view only.
    The other prefixes are too small to do that even together, so the surging prefix is
    always among the moves, and moving it relieves the PNI for real (docs/lab.md, "Flows
    after the shaper")."""
    warmup_s: float = 10.0
    """baseline alone before the surge."""
    surge_min_s: float = 50.0
    """the surge lasts at least this long, and at least ``after_relief_s`` past the relief."""
    after_relief_s: float = 15.0
    after_back_s: float = 20.0
    """baseline kept on after the traffic is back, so its flows close their windows."""
    step_timeout_s: float = 120.0


@dataclass
class Story:
    """What happened, in wall-clock seconds (``time.time()``)."""

    steps: dict[str, float] = field(default_factory=dict)
    moved: dict[str, str] = field(default_factory=dict)
    """prefix -> the link it was moved to (from the ADDs off the PNI)."""
    adds: list[tuple[float, str, str]] = field(default_factory=list)
    withdraws: list[tuple[float, str]] = field(default_factory=list)
    pni_util: list[tuple[float, float]] = field(default_factory=list)
    """(ts, utilisation) of the PNI from the SNMP poller's link-stats."""
    kernel: list[tuple[float, dict[str, int], dict[str, str]]] = field(default_factory=list)
    """(ts, tx bytes per egress veth, egress veth per moved/surged destination) every second."""
    applied: dict[str, float] = field(default_factory=dict)

    def relief_s(self) -> float:
        return self.steps["relieved"] - self.steps["surge"]


class LabPipeline(Pipeline):
    """:class:`Pipeline` on the lab instead of the simulator."""

    def __init__(self, root: Path, kafka: KafkaSettings, lab: Lab, story: StoryOptions) -> None:
        options = PipelineOptions(
            cycle_s=story.cycle_s,
            hold_s=story.hold_s,
            allowed_lateness_s=story.lateness_s,
            autopilot_mode="suggest",
            prometheus=False,
            injector="apply",
            extra={
                "autopilot": {
                    "demand_window_s": story.demand_window_s,
                    # a lab prefix is a quarter of the PNI: the per-link move cap (0.25 x
                    # capacity per cycle) would forbid every move; no more-specifics either,
                    # the lab's flows are all to the prefixes' .1
                    "policy__max_moved_fraction_per_link": 1.0,
                    "policy__split_enabled": False,
                    # flows lag the clock by a window, the lateness and the close (about
                    # 20 s here); the default (3 cycles = 15 s) would call them stale for
                    # ever, and a planner with stale inputs keeps its overrides (no release)
                    "policy__stale_after_cycles": 6,
                },
                "injector": {"exabgp_netns": lab.ns("nms")},
            },
        )
        super().__init__(root, kafka, root / "no-scenario.yaml", options)
        self.lab = lab
        self.snmp_interval_s = story.snmp_interval_s

    @property
    def inventory_file(self) -> Path:
        return self.lab.inventory_file

    @property
    def routes_file(self) -> Path:
        return self.root / "routes.yaml"

    def publish_network(self) -> None:
        """The lab's inventory (written by ``lab up``) and its peers' routes -> the topics."""
        import yaml

        routes = [
            {
                "pop": LAB_POP,
                "link": p.link_id,
                "prefix": prefix,
                "next_hop": p.peer_addr,
                "as_path": [p.asn],
                "local_pref": p.local_pref,
            }
            for p in PEERS
            for prefix in p.prefixes
        ]
        self.root.mkdir(parents=True, exist_ok=True)
        self.routes_file.write_text(yaml.safe_dump({"routes": routes}, sort_keys=False))
        self._cli("inventory", "publish", str(self.inventory_file))
        self._cli("routes", "load", str(self.routes_file))

    def _start_routers(self) -> Path:
        """The injector's configuration: the lab's pop as its router, ExaBGP in ``nms``."""
        import yaml

        rib = {"kind": "frr", "socket": str(self.lab.frr_dir)}
        router = {"neighbor": self.lab.nms_peer, "local_address": self.lab.nms_address, "rib": rib}
        cfg = self.root / "injector.yaml"
        cfg.write_text(yaml.safe_dump({"injector": {"routers": {ROUTER: router}, "community": COMMUNITY}}))
        return cfg

    def start(self, timeout: float = 150.0) -> None:
        super().start(timeout)
        cfg = self.root / "snmp.yaml"
        cfg.write_text(f"snmp:\n  credentials:\n    lab: {{community: {SNMP_COMMUNITY}}}\n")
        port = free_port()
        env = self._env("snmp", port, interval_s=self.snmp_interval_s)
        args = ["snmp", "poll", "-c", str(cfg), "-i", str(self.inventory_file)]
        self.children["snmp"] = Child("snmp", args, env, self.root / "logs" / "snmp.log", port)
        self.wait_healthy(timeout)

    def _stop_children(self) -> dict[str, int | None]:
        codes: dict[str, int | None] = {}
        if (snmp := self.children.get("snmp")) is not None:
            codes["snmp"] = snmp.stop()
        return {**codes, **super()._stop_children()}


class Watcher:
    """Follows recommendations, applied overrides and link-stats on Kafka while the story runs."""

    def __init__(self, kafka: KafkaSettings, story: Story) -> None:
        self.kafka, self.story = kafka, story
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="labloop-watcher", daemon=True)

    def start(self) -> Watcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def _run(self) -> None:
        from confluent_kafka import Consumer

        from netpilot.wire.autopilot import Recommendation
        from netpilot.wire.injector import AppliedOverride
        from netpilot.wire.links import LinkStats

        topics = {
            self.kafka.topic(catalog.RECOMMENDATIONS): "rec",
            self.kafka.topic(catalog.APPLIED_OVERRIDES): "applied",
            self.kafka.topic(catalog.LINK_STATS): "stats",
        }
        c = Consumer(
            {
                "bootstrap.servers": self.kafka.bootstrap_servers,
                "group.id": f"labloop-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        c.subscribe(list(topics))
        try:
            while not self._stop.is_set():
                for m in c.consume(500, timeout=0.5):
                    if m.error() or m.value() is None:
                        continue
                    kind, now = topics[m.topic() or ""], time.time()
                    with self._lock:
                        if kind == "rec":
                            r = Recommendation.decode(m.value())
                            if r.pop != LAB_POP:
                                continue
                            # stamped when the autopilot decided, not when this reader got to it:
                            # under load the injector (and the kernel) can act before that
                            if r.action == "ADD" and r.from_.link_id == PNI.link_id:
                                to = r.to.link_id or "?"
                                self.story.adds.append((r.generated_at, r.prefix, to))
                                self.story.moved.setdefault(r.prefix, to)
                            elif r.action == "WITHDRAW":
                                self.story.withdraws.append((r.generated_at, r.prefix))
                        elif kind == "applied":
                            a = AppliedOverride.decode(m.value())
                            self.story.applied.setdefault(a.prefix, now)
                        else:
                            s = LinkStats.decode(m.value())
                            if s.link_id == PNI.link_id and s.out_bps is not None:
                                self.story.pni_util.append((s.ts, s.out_bps / (PNI.capacity_mbit * 1e6)))
        except BaseException as exc:  # noqa: BLE001 - reported by run_story
            self.error = exc
        finally:
            c.close()


class LabLoop:
    """The lab plus the pipeline, under ``root``; ``close()`` tears both down."""

    def __init__(
        self, root: Path, kafka: KafkaSettings, options: StoryOptions = StoryOptions(), prefix: str = ""
    ) -> None:
        self.root, self.kafka, self.options = root, kafka, options
        self.lab = Lab(prefix or f"nlp{uuid.uuid4().hex[:4]}-")
        self.pipe = LabPipeline(root, kafka, self.lab, options)
        self.clients: list[object] = []

    def up(self) -> None:
        self.lab.up(collector_port=self.pipe.netflow_port)
        self.pipe.publish_network()
        self.pipe.start()

    def close(self) -> dict[str, int | None]:
        """Stop the traffic, the pipeline and the lab (each even if another step fails)."""
        import subprocess

        for proc in self.clients:
            assert isinstance(proc, subprocess.Popen)
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        try:
            return self.pipe.stop()
        finally:
            self.lab.down()

    def send(self, streams: tuple[Stream, ...], seconds: float) -> list[object]:
        procs: list[object] = [self.lab.send(s.dst, s.mbit, seconds, port=s.port) for s in streams]
        self.clients += procs
        return procs


def _wait(what: str, cond: Callable[[], object], timeout: float, loop: LabLoop, tick: Callable[[], None]) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if failed := loop.pipe.failed():
            raise PipelineError(f"{failed} exited while waiting for: {what}")
        if time.monotonic() > deadline:
            raise PipelineError(f"not within {timeout:.0f} s: {what}")
        tick()
        time.sleep(0.2)


def run_story(loop: LabLoop, say: Callable[[str], None] = lambda _: None) -> Story:
    """Baseline, surge, relief, release, back; every step waited for with a deadline.

    The autopilot may move more than one prefix, and release one while the surge goes on
    when the PNI has room for it again: each ADD and WITHDRAW is told as it comes, and the
    story's steps wait for all the prefixes moved."""
    import subprocess

    o, lab, story = loop.options, loop.lab, Story()
    watcher = Watcher(loop.kafka, story).start()
    dsts = sorted({s.dst for s in o.surge} | {s.dst for s in o.baseline})
    last_sample = [0.0]
    told = [0, 0]

    def at(ts: float) -> str:
        return f"[{ts - story.steps.get('start', ts):6.1f} s]"

    def report() -> None:
        """Tell the ADDs and WITHDRAWs seen since the last call, in time order."""
        adds, withdraws = story.adds[told[0] :], story.withdraws[told[1] :]
        told[:] = [told[0] + len(adds), told[1] + len(withdraws)]
        events = [(ts, f"autopilot ADD: {p} from {PNI.link_id} to {to}") for ts, p, to in adds]
        events += [(ts, f"autopilot WITHDRAW: {p}") for ts, p in withdraws]
        for ts, text in sorted(events):
            say(f"{at(ts)} {text}")

    def tick() -> None:
        now = time.time()
        if now - last_sample[0] >= 1.0:
            last_sample[0] = now
            story.kernel.append((now, lab.tx_bytes(), {d: lab.egress(d) for d in dsts}))
        report()
        if watcher.error is not None:
            raise PipelineError(f"watching Kafka failed: {watcher.error!r}")

    def step(name: str, text: str) -> None:
        report()
        story.steps[name] = time.time()
        say(f"{at(story.steps[name])} {text}")

    def pni_now(after: float = 0.0) -> float | None:
        """The PNI's latest utilisation by SNMP, if read recently (and after ``after``)."""
        fresh = [u for ts, u in story.pni_util if ts > max(after, time.time() - 3 * o.snmp_interval_s)]
        return fresh[-1] if fresh else None

    def moved_off_pni() -> bool:
        return bool(story.moved) and all(lab.egress(host(p)) != PNI.pop_if for p in story.moved)

    try:
        budget = o.warmup_s + o.surge_min_s + 3 * o.step_timeout_s + 120
        step("start", f"baseline: {', '.join(f'{s.mbit:g} Mbit/s to {s.dst}' for s in o.baseline)} (PNI 20 Mbit/s)")
        loop.send(o.baseline, budget)
        _wait("warm-up", lambda: time.time() - story.steps["start"] >= o.warmup_s, o.warmup_s + 5, loop, tick)
        surge = loop.send(o.surge, budget)
        step("surge", f"surge: {sum(s.mbit for s in o.surge):g} Mbit/s more to {o.surge[0].dst}")
        _wait("the PNI over its trigger by SNMP", lambda: (pni_now() or 0) > PNI_TRIGGER, o.step_timeout_s, loop, tick)
        step("overload", f"surge seen: PNI at {pni_now():.2f} of capacity (SNMP), trigger {PNI_TRIGGER}")
        _wait("an ADD off the PNI", lambda: story.adds, o.step_timeout_s, loop, tick)
        report()
        story.steps["add"] = story.adds[0][0]
        _wait(
            "the injector's confirmation of every ADD",
            lambda: all(p in story.applied for p in story.moved),
            o.step_timeout_s,
            loop,
            tick,
        )
        step("confirmed", f"injector confirmed {', '.join(sorted(story.moved))} in lab-r1's RIB")
        _wait("the kernel forwarding the moved prefixes off the PNI", moved_off_pni, o.step_timeout_s, loop, tick)
        step(
            "kernel", "kernel moved it: " + ", ".join(f"{host(p)} leaves by {lab.egress(host(p))}" for p in story.moved)
        )
        _wait(
            "the PNI under its trigger by SNMP",
            lambda: (pni_now(after=story.steps["kernel"]) or 1) < PNI_TRIGGER,
            o.step_timeout_s,
            loop,
            tick,
        )
        step("relieved", f"PNI back under trigger: {pni_now():.2f} (SNMP)")
        say(f"           surge to relief: {story.relief_s():.1f} s")
        until = max(story.steps["surge"] + o.surge_min_s, story.steps["relieved"] + o.after_relief_s)
        _wait("the end of the surge", lambda: time.time() >= until, until - time.time() + 10, loop, tick)
        for proc in surge:
            assert isinstance(proc, subprocess.Popen)
            proc.terminate()
        peak = max((u for ts, u in story.pni_util if ts > story.steps["relieved"]), default=0.0)
        step("surge_end", f"surge over (PNI at most {peak:.2f} by SNMP since the relief)")
        withdrawn = lambda: {p for _, p in story.withdraws}  # noqa: E731
        _wait(
            "a WITHDRAW of every moved prefix",
            lambda: set(story.moved) <= withdrawn(),
            o.hold_s + o.step_timeout_s,
            loop,
            tick,
        )
        step("withdraw", "every override withdrawn")
        _wait(
            "the kernel forwarding every moved prefix by the PNI again",
            lambda: all(lab.egress(host(p)) == PNI.pop_if for p in story.moved),
            o.step_timeout_s,
            loop,
            tick,
        )
        step("back", "back: the moved prefixes leave by the PNI again")
        end = time.time() + o.after_back_s
        _wait("the last flows", lambda: time.time() >= end, o.after_back_s + 10, loop, tick)
        step("end", "done")
    finally:
        watcher.stop()
    return story


def plot(story: Story, path: Path) -> Path:
    """Both links' utilisation (kernel transmit counters, per second) with the story's steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = story.steps.get("start", story.kernel[0][0] if story.kernel else 0.0)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    by_link = {p.link_id: p for p in PEERS}
    shown = [PNI, *(by_link[link] for link in sorted(set(story.moved.values())) if link in by_link)]
    for p in shown:
        veth = p.pop_if
        xs, ys = [], []
        for (ta, a, _), (tb, b, _) in zip(story.kernel, story.kernel[1:], strict=False):
            xs.append(tb - t0)
            ys.append((b[veth] - a[veth]) * 8 / (tb - ta) / (p.capacity_mbit * 1e6))
        ax.plot(xs, ys, label=f"{p.link_id} ({p.capacity_mbit} Mbit/s)")
    ax.axhline(PNI_TRIGGER, color="grey", linestyle=":", label="PNI trigger")
    marks = (
        ("surge", "surge"),
        ("add", "ADD"),
        ("relieved", "relief"),
        ("surge_end", "surge over"),
        ("withdraw", "WITHDRAW"),
    )
    for name, label in marks:
        if name in story.steps:
            ax.axvline(story.steps[name] - t0, color="black", alpha=0.3)
            ax.text(story.steps[name] - t0, 1.08, label, rotation=90, va="top", fontsize=8)
    ax.set_xlabel("seconds")
    ax.set_ylabel("utilisation (kernel tx / capacity)")
    ax.set_ylim(0, 1.15)
    ax.legend(loc="center right", fontsize=8)
    ax.set_title("netpilot dev lab: surge on the PNI, relief by the autopilot, and back")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
