"""ExaBGP as netpilot's BGP speaker: one process, one iBGP session per PoP router.

netpilot never speaks BGP itself. It writes ExaBGP's configuration (a neighbour per router),
starts ExaBGP as a child that dies with the injector (``PR_SET_PDEATHSIG``), and drives it
through ExaBGP's text API over :mod:`sinks.bgp.exabgp_api`. ExaBGP keeps what was announced
per neighbour and re-sends it when a session comes back, so a router restart needs nothing
from us; an ExaBGP restart starts empty, which :attr:`generation` tells the reconciler.
"""

from __future__ import annotations

import ctypes
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from netpilot.errors import NetpilotError
from netpilot.obs.logging import get_logger
from netpilot.proc import stop_process

log = get_logger("netpilot.injector.speaker")

_PR_SET_PDEATHSIG = 1


class SpeakerError(NetpilotError):
    """ExaBGP could not be started or reached."""


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask the kernel to signal this process when its parent dies (Linux; a no-op elsewhere)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig)
    except (OSError, AttributeError):
        pass


@dataclass(frozen=True)
class Session:
    """One iBGP session: netpilot (local) to one router (neighbour)."""

    router: str
    neighbor: str
    port: int
    peer_as: int
    local_address: str


def exabgp_config(
    sessions: Mapping[str, Session], local_as: int, router_id: str, hold_time_s: int, helper: list[str]
) -> str:
    run = " ".join(helper)
    out = [f"process netpilot {{\n    run {run};\n    encoder json;\n}}\n"]
    for s in sessions.values():
        out.append(
            f"neighbor {s.neighbor} {{\n"
            f'    description "{s.router}";\n'
            f"    router-id {router_id};\n"
            f"    local-address {s.local_address};\n"
            f"    local-as {local_as};\n"
            f"    peer-as {s.peer_as};\n"
            f"    connect {s.port};\n"
            f"    hold-time {hold_time_s};\n"
            "    family { ipv4 unicast; ipv6 unicast; }\n"
            "    api { processes [ netpilot ]; neighbor-changes; }\n"
            "}\n"
        )
    return "\n".join(out)


def exabgp_command() -> list[str]:
    """ExaBGP 5's ``exabgp server`` from this environment (the pinned PyPI package)."""
    local = Path(sys.executable).parent / "exabgp"
    exe = str(local) if local.exists() else shutil.which("exabgp")
    if exe is None:
        raise SpeakerError("exabgp not found (pip install 'exabgp>=5,<6')")
    return [exe, "server"]


class ExaBGPSpeaker:
    def __init__(
        self,
        run_dir: Path,
        sessions: Mapping[str, Session],
        local_as: int,
        router_id: str,
        hold_time_s: int = 9,
        on_state: Callable[[str, bool], None] | None = None,
        netns: str | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.netns = netns
        self.sessions = dict(sessions)
        self.local_as = local_as
        self.router_id = router_id
        self.hold_time_s = hold_time_s
        self._on_state = on_state
        self._by_address = {s.neighbor: s.router for s in sessions.values()}
        self._up: dict[str, bool] = {r: False for r in sessions}
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: socket.socket | None = None
        self._lock = threading.Lock()
        self.generation = 0
        """Incremented at each (re)start: whatever was announced before is gone."""

    # -- process --------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        sock_path = self.run_dir / "api.sock"
        if len(str(sock_path.resolve())) > 100:  # a Unix socket path holds 108 bytes at most
            import tempfile

            sock_path = Path(tempfile.mkdtemp(prefix="netpilot-exabgp-")) / "api.sock"
        sock_path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(sock_path))
        listener.listen(1)
        listener.settimeout(timeout)
        helper = [sys.executable, "-m", "sinks.bgp.exabgp_api", str(sock_path)]
        conf = self.run_dir / "exabgp.conf"
        conf.write_text(exabgp_config(self.sessions, self.local_as, self.router_id, self.hold_time_s, helper))
        env = dict(os.environ)
        env.update(
            {
                "exabgp.daemon.user": getpass.getuser(),
                "exabgp.daemon.daemonize": "false",
                "exabgp.api.ack": "false",
                "exabgp.log.level": "INFO",
                "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
            }
        )
        logf = open(self.run_dir / "exabgp.log", "ab")  # noqa: SIM115 - the child writes it
        try:
            self._proc = subprocess.Popen(
                # ip netns exec execs ExaBGP in place: the pid (and PR_SET_PDEATHSIG) stay ExaBGP's
                (["ip", "netns", "exec", self.netns] if self.netns else []) + exabgp_command() + [str(conf)],
                cwd=self.run_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        finally:
            logf.close()
        try:
            conn, _ = listener.accept()
        except (TimeoutError, OSError) as exc:
            self.stop()
            raise SpeakerError(
                f"ExaBGP's API process did not connect within {timeout:g}s (see {self.run_dir / 'exabgp.log'})"
            ) from exc
        finally:
            listener.close()
        self._conn = conn
        self._up = {r: False for r in self.sessions}
        self.generation += 1
        threading.Thread(target=self._events, args=(conn,), name="exabgp-events", daemon=True).start()
        log.info("exabgp started", pid=self._proc.pid, sessions=sorted(self.sessions), config=str(conf))

    def _events(self, conn: socket.socket) -> None:
        with conn.makefile("rb") as f:
            for raw in f:
                try:
                    ev = json.loads(raw)
                except ValueError:
                    continue
                if ev.get("type") != "state" or ev.get("neighbor", {}).get("state") not in ("up", "down"):
                    continue
                nb = ev.get("neighbor", {})
                router = self._by_address.get(nb.get("address", {}).get("peer", ""))
                if router is None:
                    continue
                up = nb.get("state") == "up"
                self._up[router] = up
                log.info("bgp session " + ("up" if up else "down"), router=router, state=nb.get("state"))
                if self._on_state is not None:
                    self._on_state(router, up)

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None and self._conn is not None

    def session_up(self, router: str) -> bool:
        return self._up.get(router, False)

    def stop(self, timeout: float = 10.0) -> None:
        # Closing the API socket makes the helper exit and ExaBGP stop; SIGTERM makes sure.
        if self._conn is not None:
            try:
                self._conn.close()
            except OSError:
                pass
            self._conn = None
        if self._proc is not None:
            stop_process(self._proc, grace_s=timeout, kill_wait_s=timeout)
        self._up = {r: False for r in self.sessions}

    # -- API ------------------------------------------------------------------------------
    def send(self, lines: list[str]) -> None:
        if not lines:
            return
        with self._lock:
            if self._conn is None:
                raise SpeakerError("ExaBGP is not running")
            try:
                self._conn.sendall("".join(line + "\n" for line in lines).encode())
            except OSError as exc:
                raise SpeakerError(f"ExaBGP API: {exc}") from exc

    def announce_line(
        self, router: str, prefix: str, next_hop: str, local_pref: int, communities: tuple[str, ...]
    ) -> str:
        s = self.sessions[router]
        return (
            f"neighbor {s.neighbor} announce route {prefix} next-hop {next_hop} "
            f"local-preference {local_pref} community [{' '.join(communities)}]"
        )

    def withdraw_line(self, router: str, prefix: str) -> str:
        return f"neighbor {self.sessions[router].neighbor} withdraw route {prefix}"


def wait_for(cond: Callable[[], bool], timeout: float, every: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(every)
    return cond()
