"""UDP listeners: sockets and timestamps, no parsing.

One thread per socket reads datagrams and puts ``(exporter16, payload, received_ms,
source_port)`` on a bounded queue (the port scopes templates to the exporter's Transport
Session, RFC 7011 §8); when the decoder falls behind the queue overflows and the loss is counted
(the socket must never wait on the decoder). Exporters not in the allow-list are counted
and dropped here, before any decoding.
"""

from __future__ import annotations

import os
import queue
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable

from netpilot.wire.flows import str_to_addr

Datagram = tuple[bytes, bytes, int, int]  # exporter, payload, received at (Unix ms), source port


class UdpReceiver:
    def __init__(
        self,
        address: str,
        port: int,
        out: queue.Queue[Datagram],
        rcvbuf: int,
        allowed: Callable[[bytes], bool],
        reuse_port: bool = False,
    ) -> None:
        self.address, self.requested_port = address, port
        self.reuse_port = reuse_port
        self._out = out
        self._rcvbuf = rcvbuf
        self._allowed = allowed
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._addr_cache: dict[str, bytes] = {}
        self._lock = threading.Lock()
        # read and reset by the service once per batch (bounded: one key per allowed exporter)
        self.received: Counter[bytes] = Counter()
        self.denied = 0
        self.queue_dropped = 0
        self.error: str | None = None
        self.rcvbuf = 0
        self._inode = ""
        self._port = 0

    @property
    def port(self) -> int:
        assert self._port, "start() first"
        return self._port

    def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:  # SO_RCVBUFFORCE (root / CAP_NET_ADMIN) is not capped by net.core.rmem_max
            sock.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), self._rcvbuf)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._rcvbuf)
        # Linux reports twice the usable size (bookkeeping overhead)
        self.rcvbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2
        if self.reuse_port:
            # several collectors on one port: the kernel hashes each exporter session (source
            # address and port) to one socket, and re-hashes when a socket closes (a collector
            # dies) or joins; the live template follower makes the move decode at once
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((self.address, self.requested_port))
        sock.settimeout(0.2)
        self._sock = sock
        self._port = sock.getsockname()[1]
        self._inode = str(os.fstat(sock.fileno()).st_ino)
        self._thread = threading.Thread(target=self._run, name=f"udp-{self.port}", daemon=True)
        self._thread.start()

    def _exporter(self, host: str) -> bytes:
        addr = self._addr_cache.get(host)
        if addr is None:
            addr = str_to_addr(host.removeprefix("::ffff:") if host.startswith("::ffff:") and "." in host else host)
            if len(self._addr_cache) < 65536:
                self._addr_cache[host] = addr
        return addr

    def _run(self) -> None:
        assert self._sock is not None
        recv, put, allowed = self._sock.recvfrom, self._out.put_nowait, self._allowed
        try:
            while not self._stop.is_set():
                try:
                    data, src = recv(65535)
                except TimeoutError:
                    continue
                exporter = self._exporter(src[0])
                ok = allowed(exporter)
                queued = False
                if ok:
                    try:
                        put((exporter, data, int(time.time() * 1000), src[1]))
                        queued = True
                    except queue.Full:
                        pass
                with self._lock:
                    if not ok:
                        self.denied += 1
                    elif queued:
                        self.received[exporter] += 1
                    else:
                        self.queue_dropped += 1
        except OSError as exc:
            if not self._stop.is_set():
                self.error = f"{type(exc).__name__}: {exc}"

    def take_counts(self) -> tuple[Counter[bytes], int, int]:
        """Counts since the last call (received per exporter, denied, queue drops)."""
        with self._lock:
            received, self.received = self.received, Counter()
            denied, self.denied = self.denied, 0
            dropped, self.queue_dropped = self.queue_dropped, 0
        return received, denied, dropped

    def kernel_drops(self) -> int:
        """Datagrams the kernel dropped on this socket (full receive buffer), from /proc.

        The socket layer loses datagrams silently; this makes the loss a number.
        Returns 0 where /proc/net/udp is not available.
        """
        if not self._inode:  # not started; after stop() the /proc entry is gone: 0 (no delta)
            return 0
        inode = self._inode
        for table in ("/proc/net/udp", "/proc/net/udp6"):
            try:
                with open(table) as fh:
                    next(fh)
                    for line in fh:
                        cols = line.split()
                        if len(cols) > 12 and cols[9] == inode:
                            return int(cols[-1])
            except OSError:
                continue
        return 0

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        if self._sock is not None:
            self._sock.close()
