"""ExaBGP's API process (``process netpilot { run ... }``): a relay, not a speaker.

ExaBGP reads commands from this process's stdout and writes its events (neighbour up/down,
JSON) to its stdin. The injector is on the other end of a Unix socket: its commands go to
stdout, ExaBGP's events go back to it. When the injector dies the socket closes, this
process exits, and ExaBGP stops with it ("lost the helper process"), which closes every
BGP session: the routers drop the injected routes at once (Edge Fabric's fail-safe).
"""

from __future__ import annotations

import socket
import sys
import threading

from sinks.bgp.speaker import die_with_parent


def main(path: str) -> int:
    die_with_parent()  # and if ExaBGP itself is killed, do not linger as an orphan
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)

    def events() -> None:
        try:
            for line in sys.stdin.buffer:
                sock.sendall(line)
        except OSError:
            pass

    threading.Thread(target=events, daemon=True).start()
    with sock.makefile("rb") as commands:
        for line in commands:
            sys.stdout.buffer.write(line)
            sys.stdout.buffer.flush()  # ExaBGP acts on a line only once it has it
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
