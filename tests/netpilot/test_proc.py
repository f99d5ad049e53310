"""netpilot.proc: SIGTERM, a grace period, then SIGKILL."""

from __future__ import annotations

import signal
import subprocess
import sys

from netpilot.proc import stop_pid, stop_process

# A child that ignores SIGTERM: only SIGKILL stops it.
STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
)


def _stubborn() -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


def test_stop_process_terminates_then_kills() -> None:
    polite = subprocess.Popen(["sleep", "60"])
    assert stop_process(polite, grace_s=10) == -signal.SIGTERM
    assert stop_process(polite, grace_s=10) == -signal.SIGTERM  # already stopped: nothing to do
    stubborn = _stubborn()
    assert stop_process(stubborn, grace_s=0.3) == -signal.SIGKILL


def test_stop_pid_terminates_then_kills_and_reaps() -> None:
    polite = subprocess.Popen(["sleep", "60"])
    stop_pid(polite.pid, grace_s=10, poll_s=0.01)  # a zombie child counts as stopped (and is reaped)
    polite.wait(1)
    stubborn = _stubborn()
    stop_pid(stubborn.pid, grace_s=0.3, poll_s=0.01)
    stubborn.wait(1)  # dead (stop_pid may have reaped it already: then Popen sees no child)
