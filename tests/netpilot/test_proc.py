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


# A netpilot service whose stop() hangs: lifecycle.run stops it on SIGTERM and waits.
HANGING_STOP = """
import threading
from netpilot import lifecycle

class Hangs:
    name = "hangs"
    def start(self): print("ready", flush=True)
    def stop(self): wait_for_ever_in_stop()
    def health(self): return True, "ok"

def wait_for_ever_in_stop():
    threading.Event().wait()

lifecycle.run([Hangs()], poll_interval=0.05)
"""


def test_a_service_that_does_not_stop_writes_its_stacks_before_the_kill() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", HANGING_STOP], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    assert stop_process(proc, grace_s=0.5, dump_stacks=True) == -signal.SIGKILL
    out = proc.stdout.read()
    assert "wait_for_ever_in_stop" in out, out  # the stack shows what the stop waited for


# A netpilot service that stops at once, its loop polling health as often as it can: the
# signal lands while the loop's wait holds its lock far more often than with the default 1 s.
QUICK_STOP = """
from netpilot import lifecycle

class Quick:
    name = "quick"
    def start(self): print("ready", flush=True)
    def stop(self): pass
    def health(self): return True, "ok"

lifecycle.run([Quick()], poll_interval=0.00001)
"""


def test_sigterm_stops_a_service_whatever_its_main_loop_is_doing() -> None:
    # SIGTERM's handler once set the loop's Event: landing while the loop's wait held the
    # Event's lock, it waited for that lock for ever (CI saw it once) and only SIGKILL ended it
    for _ in range(30):
        proc = subprocess.Popen([sys.executable, "-c", QUICK_STOP], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        assert stop_process(proc, grace_s=10, dump_stacks=True) == 0, proc.stdout.read()
