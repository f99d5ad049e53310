"""``lifecycle.serve``: /healthz says "starting" until the service's start() has returned."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry

from netpilot import lifecycle
from netpilot.settings import MetricsSettings


class SlowStart:
    """A service whose start() blocks until the test lets it go, and that reports itself
    dead when told to (which ends ``run``: no signal reaches a thread that is not main)."""

    name = "slow"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.dead = False
        self.stopped = False

    def start(self) -> None:
        assert self.release.wait(30)

    def stop(self) -> None:
        self.stopped = True

    def health(self) -> tuple[bool, str]:
        return (False, "told to die") if self.dead else (True, "ok")


def healthz(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_healthz_is_503_starting_until_start_returns(capfd: pytest.CaptureFixture[str]) -> None:
    svc = SlowStart()
    code: list[int] = []
    settings = MetricsSettings(listen="127.0.0.1:0")
    t = threading.Thread(target=lambda: code.append(lifecycle.serve(svc, CollectorRegistry(), settings)), daemon=True)
    t.start()
    try:
        port, err, deadline = None, "", time.monotonic() + 10
        while port is None and time.monotonic() < deadline:
            err += capfd.readouterr().err
            for line in err.splitlines():
                if line.startswith("metrics on "):  # metrics on http://127.0.0.1:PORT/metrics
                    port = int(line.rsplit(":", 1)[1].split("/")[0])
            time.sleep(0.02)
        assert port is not None, f"serve() printed no metrics address: {err!r}"
        assert healthz(port) == (503, "starting")
        svc.release.set()
        deadline = time.monotonic() + 10
        while healthz(port)[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert healthz(port) == (200, "ok")
    finally:
        svc.release.set()
        svc.dead = True
        t.join(15)
    assert code == [1] and svc.stopped  # stopped by its own failure
