"""A UDP relay from the root namespace into a lab namespace, with no address on any
root-namespace interface.

A socket belongs to the network namespace its creator was in when it was created, and keeps
it. So one process can listen on 127.0.0.1 in the root namespace and, for each client, open a
socket *inside* the lab namespace (``setns`` there, ``socket()``, ``setns`` back) that talks
to the agent on the lab's own 127.0.0.1. The SNMP poller reaches the lab router's snmpd this
way, and (``reverse``) the flow exporters in the lab reach the collector. Run as
``python -m netpilot.dev.labrelay LISTEN_PORT NAMESPACE TARGET_PORT [reverse|tcp-out]``
(``tcp-out``: TCP, listening in the namespace: the router's BMP session); it prints
``ready`` once listening and runs until signalled.
"""

from __future__ import annotations

import ctypes
import os
import selectors
import socket
import sys
from pathlib import Path

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def socket_in(netns: str, kind: int) -> socket.socket:
    """A socket created inside network namespace ``netns`` (this thread comes back after)."""
    here = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    there = os.open(str(Path("/var/run/netns") / netns), os.O_RDONLY)
    try:
        _setns(there)
        try:
            return socket.socket(socket.AF_INET, kind)
        finally:
            _setns(here)
    finally:
        os.close(here)
        os.close(there)


def relay_udp(listen_port: int, netns: str, target_port: int, reverse: bool = False) -> None:
    """``reverse``: listen inside ``netns`` and send to the root namespace (an exporter in
    the lab reaching the collector); otherwise listen in the root namespace (a poller
    reaching an agent in the lab)."""
    front = socket_in(netns, socket.SOCK_DGRAM) if reverse else socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    front.bind(("127.0.0.1", listen_port))
    sel = selectors.DefaultSelector()
    sel.register(front, selectors.EVENT_READ, None)
    backs: dict[tuple[str, int], socket.socket] = {}
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            sock: socket.socket = key.fileobj  # type: ignore[assignment]
            if key.data is None:  # a client's request: to the agent through its own lab socket
                data, client = sock.recvfrom(65535)
                back = backs.get(client)
                if back is None:
                    if len(backs) > 64:  # clients come and go (a poller restarts): forget the oldest
                        old = backs.pop(next(iter(backs)))
                        sel.unregister(old)
                        old.close()
                    back = (
                        socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                        if reverse
                        else socket_in(netns, socket.SOCK_DGRAM)
                    )
                    back.connect(("127.0.0.1", target_port))
                    backs[client] = back
                    sel.register(back, selectors.EVENT_READ, client)
                try:
                    back.send(data)
                except OSError:  # refused (ICMP) while the far end is down: dropped, as UDP would be
                    continue
            else:  # the agent's answer: back to that client
                try:
                    data = sock.recv(65535)
                except OSError:  # ICMP port unreachable from a restarting agent: the client retries
                    continue
                front.sendto(data, key.data)


def relay_tcp_out(listen_port: int, netns: str, target_port: int) -> None:
    """Listen on 127.0.0.1:``listen_port`` inside ``netns``; each connection is joined to a
    new one to the root namespace's 127.0.0.1:``target_port`` (the router's BMP session to
    the collector). A refused or failed connect closes the router's side: it retries."""
    import threading

    front = socket_in(netns, socket.SOCK_STREAM)
    front.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    front.bind(("127.0.0.1", listen_port))
    front.listen(8)
    print("ready", flush=True)

    def pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    while True:
        conn, _ = front.accept()
        try:
            back = socket.create_connection(("127.0.0.1", target_port), timeout=5)
            back.settimeout(None)
        except OSError:
            conn.close()
            continue
        threading.Thread(target=pump, args=(conn, back), daemon=True).start()
        threading.Thread(target=pump, args=(back, conn), daemon=True).start()


if __name__ == "__main__":
    if sys.argv[4:] == ["tcp-out"]:
        relay_tcp_out(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
    else:
        relay_udp(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), reverse=sys.argv[4:] == ["reverse"])
