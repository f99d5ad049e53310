"""Stopping a process: SIGTERM, a grace period, then SIGKILL.

Two forms: :func:`stop_process` for a child we hold a :class:`subprocess.Popen` of, and
:func:`stop_pid` for a process known only by its pid (a daemon's pid file, a broker started
by an earlier run).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

DUMP_STACKS_SIGNAL = signal.SIGUSR1
"""Makes a netpilot service (``netpilot.lifecycle.run``) write every thread's stack to its
stderr: what a stop that hangs waits for."""


def stop_process(
    proc: subprocess.Popen[Any], grace_s: float, kill_wait_s: float = 10.0, dump_stacks: bool = False
) -> int | None:
    """SIGTERM ``proc`` if it runs, wait up to ``grace_s``, then SIGKILL it and wait up to
    ``kill_wait_s`` (:class:`subprocess.TimeoutExpired` if even that is not enough).
    With ``dump_stacks`` (only for a netpilot service: the signal's default action ends a
    process) it is sent :data:`DUMP_STACKS_SIGNAL` first and given a second to write its
    stacks to its log. Returns its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            if dump_stacks:
                proc.send_signal(DUMP_STACKS_SIGNAL)
                try:
                    proc.wait(1.0)  # it may still end meanwhile; the dump is written at once
                except subprocess.TimeoutExpired:
                    pass
            if proc.poll() is None:
                proc.kill()
                proc.wait(kill_wait_s)
    return proc.returncode


def stop_pid(pid: int, grace_s: float, poll_s: float = 0.2) -> None:
    """SIGTERM process ``pid``, poll every ``poll_s`` until it is gone (or a zombie) for up to
    ``grace_s``, then SIGKILL it. A process already gone is fine; a zombie child is reaped."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        if _zombie(pid):
            break
        time.sleep(poll_s)
    else:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"
