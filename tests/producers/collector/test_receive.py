"""UDP receiver: allow-list, per-exporter counts, bounded queue with counted overflow."""

from __future__ import annotations

import queue
import socket
import time

from netpilot.wire.flows import str_to_addr
from producers.collector.receive import UdpReceiver

ALLOWED = str_to_addr("127.0.0.1")


def test_overflow_and_denied_are_counted_not_silent() -> None:
    q: queue.Queue = queue.Queue(maxsize=5)  # type: ignore[type-arg]
    r = UdpReceiver("127.0.0.1", 0, q, 1 << 20, lambda e: e == ALLOWED)
    r.start()
    try:
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(20):
            tx.sendto(b"d%d" % i, ("127.0.0.1", r.port))
        other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        other.bind(("127.0.0.2", 0))
        other.sendto(b"x", ("127.0.0.1", r.port))
        deadline = time.monotonic() + 5
        totals = [0, 0, 0]
        while time.monotonic() < deadline and sum(totals) < 21:
            received, denied, dropped = r.take_counts()
            totals[0] += sum(received.values())
            totals[1] += denied
            totals[2] += dropped
            time.sleep(0.05)
        tx.close()
        other.close()
    finally:
        r.stop()
    assert totals == [5, 1, 15]
    first = q.get_nowait()
    assert first[0] == ALLOWED and first[1] == b"d0" and abs(first[2] / 1000 - time.time()) < 30
