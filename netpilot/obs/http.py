"""/metrics and /healthz on one small threaded HTTP server per process."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


class MetricsServer:
    """Serves ``registry`` on ``/metrics`` and ``health()`` on ``/healthz`` (200 or 503)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        listen: str = "127.0.0.1:0",
        health: Callable[[], tuple[bool, str]] | None = None,
    ) -> None:
        host, _, port = listen.rpartition(":")
        self._addr = (host or "127.0.0.1", int(port or 0))
        self._registry = registry
        self._health = health or (lambda: (True, "ok"))
        self._server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self._addr[0]}:{self.port}"

    def start(self) -> MetricsServer:
        registry, health = self._registry, self._health

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # http.server API
                if self.path.startswith("/metrics"):
                    body, ctype, code = generate_latest(registry), CONTENT_TYPE_LATEST, 200
                elif self.path.startswith("/healthz"):
                    ok, text = health()
                    body, ctype, code = text.encode(), "text/plain", 200 if ok else 503
                else:
                    body, ctype, code = b"not found\n", "text/plain", 404
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:  # scrapes are not news
                pass

        self._server = serve_in_thread(self._addr, Handler, "metrics-http")
        return self

    def stop(self) -> None:
        shutdown(self._server)
        self._server = None


def serve_in_thread(addr: tuple[str, int], handler: type[BaseHTTPRequestHandler], name: str) -> ThreadingHTTPServer:
    """A threaded HTTP server answering on a daemon thread (never blocks process exit)."""
    server = ThreadingHTTPServer(addr, handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name=name, daemon=True).start()
    return server


def shutdown(server: ThreadingHTTPServer | None) -> None:
    if server is not None:
        server.shutdown()
        server.server_close()
