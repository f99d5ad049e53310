"""The log rate limit: a burst of identical records lets the first N through and sums up the
rest in one "suppressed N similar messages" line (netpilot/obs/logging.py)."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator

import pytest
import structlog
from confluent_kafka import Producer

from netpilot.obs.logging import LIBRDKAFKA_LOGGER, _StderrHandler, get_logger, librdkafka_logger, setup_logging
from netpilot.settings import LogSettings


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def records(clock: Clock) -> Iterator[list[logging.LogRecord]]:
    """setup_logging with a burst of 5 per 60 s and a fake clock; what the root handler
    lets through, in order (and the previous logging set-up restored after)."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    setup_logging(LogSettings(level="info", format="json", rate_limit_burst=5, rate_limit_interval_s=60), clock=clock)
    ours = next(h for h in root.handlers if isinstance(h, _StderrHandler))
    got: list[logging.LogRecord] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            got.append(record)

    capture = Capture()
    for f in ours.filters:  # the same limit as the real handler
        capture.addFilter(f)
    root.removeHandler(ours)  # keep the test's stderr quiet
    root.addHandler(capture)
    try:
        yield got
    finally:
        root.removeHandler(capture)
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.reset_defaults()


def test_burst_of_identical_reconnect_errors(records: list[logging.LogRecord], clock: Clock) -> None:
    aiokafka = logging.getLogger("aiokafka.conn")
    for i in range(22_000):
        aiokafka.error("Unable connect to node with id %s: %s", 1, f"[Errno 111] attempt {i}")
    logging.getLogger("faust").warning("a different message")  # its own budget
    assert len(records) == 5 + 1
    assert [r.getMessage() for r in records[:2]] == [
        "Unable connect to node with id 1: [Errno 111] attempt 0",
        "Unable connect to node with id 1: [Errno 111] attempt 1",
    ]
    clock.t += 61  # the interval is over: the next record brings the summary first
    aiokafka.error("Unable connect to node with id %s: %s", 1, "again")
    summary, again = records[-2:]
    assert summary.name == "aiokafka.conn" and summary.levelno == logging.ERROR
    assert summary.getMessage() == (
        "suppressed 21995 similar messages (at most 5 per 60 s): Unable connect to node with id %s: %s"
    )
    assert again.getMessage().endswith("again")


def test_a_flood_that_stops_is_still_summed_up(records: list[logging.LogRecord], clock: Clock) -> None:
    for _ in range(50):
        logging.getLogger("kafka.client").warning("node %s not ready", 3)
    assert len(records) == 5
    clock.t += 61
    logging.getLogger("netpilot.other").info("something else")  # any record sweeps
    assert [r.getMessage() for r in records[5:]] == [
        "suppressed 45 similar messages (at most 5 per 60 s): node %s not ready",
        "something else",
    ]


def test_levels_and_templates_are_apart(records: list[logging.LogRecord]) -> None:
    log = logging.getLogger("mode")
    for _ in range(10):
        log.warning("x %s", 1)
        log.error("x %s", 1)
        log.warning("y %s", 1)
    assert len(records) == 15


def test_librdkafka_lines_go_through_the_limit(records: list[logging.LogRecord], clock: Clock) -> None:
    """A real librdkafka client failing to connect: its FAIL lines reach stdlib logging and
    are limited by facility. (librdkafka logs a refused connection about once a second; its
    log lines are served by poll(), in this thread, so the counts below are stable.)"""

    def is_fail(r: logging.LogRecord) -> bool:
        return r.name == LIBRDKAFKA_LOGGER and isinstance(r.args, tuple) and bool(r.args) and r.args[0] == "FAIL"

    seen: list[logging.LogRecord] = []  # everything librdkafka logged, before any limit

    class Seen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    tap = Seen()
    librdkafka_logger().addHandler(tap)
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]  # bound, never listening: connections are refused
            p = Producer({"bootstrap.servers": f"127.0.0.1:{port}", "logger": librdkafka_logger()})
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and sum(map(is_fail, seen)) < 7:
                p.poll(0.2)
    finally:
        librdkafka_logger().removeHandler(tap)
    fails = sum(map(is_fail, seen))
    assert fails >= 7
    assert sum(map(is_fail, records)) == 5
    clock.t += 61
    logging.getLogger("netpilot.test").info("any record sweeps the expired windows")
    (summary,) = [r for r in records if "suppressed" in r.getMessage()]
    assert summary.name == LIBRDKAFKA_LOGGER and summary.levelno == logging.ERROR
    assert summary.getMessage() == f"suppressed {fails - 5} similar messages (at most 5 per 60 s): %s [%s] %s FAIL"


def test_structlog_events_share_the_limit(capsys: pytest.CaptureFixture[str], clock: Clock) -> None:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        setup_logging(LogSettings(format="json", rate_limit_burst=3, rate_limit_interval_s=10), "test", clock=clock)
        log = get_logger("netpilot.test")
        for i in range(100):
            log.warning("insert failed; retrying", attempt=i)
        log.info("other event")
        clock.t += 11
        log.warning("insert failed; retrying", attempt=100)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.reset_defaults()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert [(e["event"], e.get("attempt")) for e in lines] == [
        ("insert failed; retrying", 0),
        ("insert failed; retrying", 1),
        ("insert failed; retrying", 2),
        ("other event", None),
        ("suppressed similar messages", None),
        ("insert failed; retrying", 100),
    ]
    summary = lines[4]
    assert summary["suppressed"] == 97 and summary["message"] == "insert failed; retrying"
    assert summary["level"] == "warning" and summary["component"] == "test"
    assert "netpilot_suppressed_summary" not in summary


def test_no_limit_when_the_burst_is_zero(records: list[logging.LogRecord]) -> None:
    root = logging.getLogger()
    setup_logging(LogSettings(rate_limit_burst=0))
    ours = next(h for h in root.handlers if isinstance(h, _StderrHandler))
    assert not ours.filters
