"""A small read-only query endpoint for embedded (chDB) mode.

chDB lets one process open a data path, so while the sink runs it is the only reader. It
serves ``GET /query?sql=...&format=...`` (or ``POST /query`` with the SQL as body) on
``query_listen``, answering in any ClickHouse output format (default
``TabSeparatedWithNames``). Only statements that read are accepted. When the sink is
stopped, ``netpilot sink clickhouse query`` opens the path directly instead.
"""

from __future__ import annotations

import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from netpilot.obs.http import serve_in_thread, shutdown
from sinks.clickhouse.client import ClickHouseClient, ClickHouseError

_READ_ONLY = re.compile(r"^\s*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXISTS|EXPLAIN)\b", re.I)
_FORMAT = re.compile(r"^[A-Za-z0-9]+$")


def is_read_only(sql: str) -> bool:
    # One statement that reads: the guard refuses writes and a second statement after ';'.
    return bool(_READ_ONLY.match(sql)) and ";" not in sql.strip().rstrip(";")


class QueryServer:
    def __init__(self, client: ClickHouseClient, listen: str) -> None:
        host, _, port = listen.rpartition(":")
        self._addr = (host or "127.0.0.1", int(port or 0))
        self._client = client
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://{self._addr[0]}:{self._server.server_address[1]}"

    def start(self) -> QueryServer:
        client = self._client

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, sql: str, fmt: str) -> None:
                if not is_read_only(sql):
                    return self._send(400, b"only one read-only statement (SELECT/WITH/SHOW/...)\n")
                if not _FORMAT.match(fmt):
                    return self._send(400, b"bad format name\n")
                try:
                    body = client.raw(sql.strip().rstrip(";"), fmt=fmt)
                except ClickHouseError as exc:
                    return self._send(500, f"{exc}\n".encode())
                self._send(200, body)

            def _send(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # http.server API
                u = urlparse(self.path)
                q = parse_qs(u.query)
                if u.path != "/query" or "sql" not in q:
                    return self._send(404, b"GET /query?sql=...&format=...\n")
                self._answer(q["sql"][0], q.get("format", ["TabSeparatedWithNames"])[0])

            def do_POST(self) -> None:
                u = urlparse(self.path)
                if u.path != "/query":
                    return self._send(404, b"POST /query with the SQL as body\n")
                n = int(self.headers.get("Content-Length") or 0)
                sql = self.rfile.read(min(n, 1 << 20)).decode(errors="replace")
                self._answer(sql, parse_qs(u.query).get("format", ["TabSeparatedWithNames"])[0])

            def log_message(self, *args: object) -> None:
                pass

        self._server = serve_in_thread(self._addr, Handler, "ch-query-http")
        return self

    def stop(self) -> None:
        shutdown(self._server)
        self._server = None
