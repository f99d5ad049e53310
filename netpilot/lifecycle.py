"""Service lifecycle: start in order, stop in reverse, stop everything on a signal or a death.

A service's constructor is inert (no sockets, threads or clients); ``start()`` acquires,
``stop()`` releases with a bounded flush. ``run()`` blocks until SIGINT/SIGTERM or until
any service reports itself dead through ``health()``; a second SIGINT exits at once.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from netpilot.obs.logging import get_logger
from netpilot.proc import DUMP_STACKS_SIGNAL

log = get_logger("netpilot.lifecycle")


class Service(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def health(self) -> tuple[bool, str]: ...


def run(
    services: Sequence[Service],
    poll_interval: float = 1.0,
    stop_event: threading.Event | None = None,
    on_started: Callable[[], None] | None = None,
) -> int:
    """Run services until a signal or a failure. Returns the process exit code.
    ``on_started`` is called once every service's ``start()`` has returned."""
    stop = stop_event or threading.Event()
    failed: list[str] = []
    # The signal handler only records the signal; the loop below acts on it. Setting the
    # Event from the handler deadlocked: the handler runs on the main thread between two
    # bytecodes, and when that is inside ``stop.wait()`` after it re-took the Event's lock
    # (every poll interval), ``stop.set()`` waits for that same lock for ever (caught by
    # tests/netpilot/test_proc.py in CI: SIGTERM, then nothing until the SIGKILL). Logging
    # from it could likewise re-enter the log stream's lock.
    signals_seen: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        signals_seen.append(signum)
        if len(signals_seen) > 1 and signum == signal.SIGINT:
            os.write(2, b"second interrupt: exiting now\n")
            os._exit(130)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        # a crash in C code (SIGSEGV, SIGABRT...) writes the Python stacks to stderr (the
        # log) instead of ending the process without a word; and a stop that hangs: SIGUSR1
        # writes them too, so what it waits for is known before a supervisor's SIGKILL
        # (netpilot.proc sends it first)
        faulthandler.enable(all_threads=True)
        faulthandler.register(DUMP_STACKS_SIGNAL, all_threads=True)

    logged: list[bool] = []

    def signalled() -> bool:
        if signals_seen and not logged:
            logged.append(True)
            log.info("stopping", signal=signal.Signals(signals_seen[0]).name)
        return bool(signals_seen)

    started: list[Service] = []
    try:
        for svc in services:
            if signalled():
                break  # stopped while starting: don't start the rest
            svc.start()
            started.append(svc)
            log.info("started", service=svc.name)
        if on_started is not None and len(started) == len(services):
            on_started()
        # a signal is seen within one poll interval (the wait is not cut short by it)
        while not signalled() and not stop.wait(poll_interval):
            for svc in started:
                ok, why = svc.health()
                if not ok:
                    log.error("service failed; stopping everything", service=svc.name, reason=why)
                    failed.append(svc.name)
                    stop.set()
                    break
    except Exception as exc:  # noqa: BLE001 - a failed start stops what already runs
        log.error("start-up failed", error=f"{type(exc).__name__}: {exc}")
        failed.append("startup")
    finally:
        for svc in reversed(started):
            try:
                svc.stop()
                log.info("stopped", service=svc.name)
            except Exception as exc:  # noqa: BLE001 - keep stopping the others
                log.error("stop failed", service=svc.name, error=str(exc))
                failed.append(svc.name)
    return 1 if failed else 0


def serve(service: Service, registry: object, metrics: object) -> int:
    """Run one service with its ``/metrics`` and ``/healthz`` endpoint until a signal or a
    failure; returns the exit code. ``metrics`` is the component's MetricsSettings."""
    from netpilot.obs.http import MetricsServer

    enabled = getattr(metrics, "enabled", True)
    started = threading.Event()

    def health() -> tuple[bool, str]:
        # /healthz answers from the first moment (so a probe sees the process), but says
        # "starting" until start() has returned: a collector that still loads its templates
        # does not listen yet, and a restart that looked healthy at once was losing the
        # datagrams sent meanwhile without anyone knowing (the chaos test caught it)
        return service.health() if started.is_set() else (False, "starting")

    server = MetricsServer(registry, getattr(metrics, "listen", "127.0.0.1:0"), health=health)  # type: ignore[arg-type]
    if enabled:
        server.start()
        # a plain line on stderr: scripts and tests find the (possibly ephemeral) port here
        print(f"metrics on {server.url}/metrics", file=sys.stderr, flush=True)
    try:
        return run([service], on_started=started.set)
    finally:
        if enabled:
            server.stop()
