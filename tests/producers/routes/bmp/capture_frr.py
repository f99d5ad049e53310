"""Record FRR's own BMP output into a test vector (run as root; needs frr and bird2).

    .venv/bin/python -m tests.producers.routes.bmp.capture_frr tests/producers/routes/bmp/vectors/frr-8.4-pre-policy.bmp

The lab of :mod:`bmplab` (FRR bgpd with two BIRD eBGP peers on loopback) runs with both
sessions established; then a plain TCP listener takes FRR's BMP connection and writes every
byte it receives, while the script makes the peers change:

1. the connect: Initiation, a Peer Up per peer, the table sync (routes, End-of-RIB per
   peer and family, pre-policy *and* the post-policy End-of-RIB FRR always adds);
2. ``peer-a`` withdraws 198.18.11.0/24;
3. ``peer-b``'s session is shut (Peer Down, reason 3: the peer's NOTIFICATION).

This is a recording tool, not a test: it waits for the stream to go quiet between steps.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path

from tests.producers.routes.bmp.bmplab import BmpLab, free_port

PEERS = [
    ("peer-a", ["198.18.10.0/24", "198.18.11.0/24", "203.0.113.0/25", "2001:db8:10::/48", "2001:db8:11::/48"]),
    ("peer-b", ["198.18.10.0/24", "198.18.12.0/24", "2001:db8:12::/48"]),
]


class Recorder(threading.Thread):
    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.server = socket.create_server(("127.0.0.1", port))
        self.data = bytearray()
        self.last = time.monotonic()
        self.done = threading.Event()

    def run(self) -> None:
        conn, _ = self.server.accept()
        conn.settimeout(0.2)
        with conn:
            while not self.done.is_set():
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    break
                self.data += chunk
                self.last = time.monotonic()

    def quiet(self, seconds: float = 2.0, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() - self.last < seconds or not self.data:
            if time.monotonic() > deadline:
                raise RuntimeError("the BMP stream did not settle")
            time.sleep(0.1)


def main(out: Path) -> None:
    port = free_port()
    lab = BmpLab(port, PEERS).open()
    try:
        deadline = time.monotonic() + 60
        while not all(lab.received(p) == len(prefixes) for p, prefixes in PEERS):
            if time.monotonic() > deadline:
                raise RuntimeError("peers did not come up")
            time.sleep(0.2)
        rec = Recorder(port)
        rec.start()
        rec.quiet()
        lab.announce("peer-a", [p for p in PEERS[0][1] if p != "198.18.11.0/24"])
        rec.quiet()
        lab.shut("peer-b")
        rec.quiet()
        rec.done.set()
        rec.join(5)
        out.write_bytes(bytes(rec.data))
        print(f"{out}: {len(rec.data)} bytes")
    finally:
        lab.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
