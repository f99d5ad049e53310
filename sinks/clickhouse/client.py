"""The one door to ClickHouse: connect from a DSN, insert Arrow with a dedup token, query.

The same code serves embedded chDB (``chdb:///abs/path``) and a server (``http(s)://``):
clickhouse-connect picks the backend from the DSN. Errors are sorted into two kinds the
sink acts on differently:

* :class:`ClickHouseUnavailable` - retry the same batch later (pause consumption);
* :class:`InsertRejected` - the data itself is refused; retrying cannot help.

Fault injection (a test seam, not a setting): the environment variable
``NETPILOT_TEST_CLICKHOUSE_FAULT_FILE`` (:data:`FAULT_FILE_ENV`), read when a client is
created, names a file that, while it exists, makes this wrapper fail the way a real outage
does. ``unavailable`` refuses every call before it
reaches ClickHouse (a server down / a path that cannot be opened); ``ack-lost`` performs the
insert and then raises once, as when a server applied an insert but the answer never
arrived; ``kill-after-insert`` SIGKILLs the process right after an acknowledged insert,
before the offset commit (the window the dedup token and the intent exist for).
It is a seam in code we own, not a mock of clickhouse-connect: every other call is real.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa

from netpilot.errors import ConfigError, NetpilotError

FAULT_FILE_ENV = "NETPILOT_TEST_CLICKHOUSE_FAULT_FILE"
"""TESTING ONLY: names the fault file (see the module docstring); unset in production."""

# ClickHouse error codes that mean "this data cannot go into this table" (not an outage).
_DATA_ERROR_CODES = frozenset({6, 26, 27, 32, 38, 41, 53, 69, 70, 72, 117, 130, 131, 349, 386})


class ClickHouseError(NetpilotError):
    """Base of the sink's ClickHouse errors."""


class ClickHouseUnavailable(ClickHouseError):
    """ClickHouse cannot take the request now; the same request may succeed later."""


class InsertRejected(ClickHouseError):
    """ClickHouse refused the data (types, values); retrying the same data cannot succeed."""


def describe_dsn(dsn: str) -> str:
    """The DSN without credentials, for logs."""
    u = urlparse(dsn)
    if u.scheme == "chdb":
        return f"chdb://{u.netloc}{u.path}"
    host = u.hostname or ""
    return f"{u.scheme}://{host}{':' + str(u.port) if u.port else ''}{u.path}"


def check_dsn(dsn: str) -> None:
    u = urlparse(dsn)
    if u.scheme == "chdb":
        if u.netloc not in ("", "memory") or (not u.netloc and not u.path.startswith("/")):
            raise ConfigError(f"chDB DSN {describe_dsn(dsn)!r}: use chdb:///absolute/path (three slashes)")
    elif u.scheme not in ("http", "https"):
        raise ConfigError(f"unsupported ClickHouse DSN scheme {u.scheme!r}: use chdb:///path or http(s)://")


def _error_code(exc: BaseException) -> int | None:
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    import re

    m = re.search(r"Code: (\d+)", str(exc))
    return int(m.group(1)) if m else None


class ClickHouseClient:
    """Thread-safe wrapper (one lock: chDB runs one query at a time per session anyway)."""

    def __init__(self, dsn: str, settings: Mapping[str, Any] | None = None) -> None:
        check_dsn(dsn)
        self.dsn = dsn
        self.embedded = dsn.startswith("chdb:")
        fault_file = os.environ.get(FAULT_FILE_ENV)
        self._fault_file = Path(fault_file) if fault_file else None
        self._settings = dict(settings or {})
        self._client: Any = None
        self._lock = threading.Lock()

    # -- connection -----------------------------------------------------------------
    def _connected(self) -> Any:
        if self._client is None:
            import clickhouse_connect

            try:
                self._client = clickhouse_connect.get_client(dsn=self.dsn, settings=self._settings)
            except Exception as exc:  # any failure to connect is an outage
                hint = ""
                if self.embedded and "EmbeddedServer" in str(exc):
                    hint = (
                        " (chDB opens a data path from one process at a time: is the sink "
                        "running? read through its query_listen endpoint, or stop it first)"
                    )
                raise ClickHouseUnavailable(
                    f"cannot connect to ClickHouse at {describe_dsn(self.dsn)}: {exc}{hint}"
                ) from exc
        return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                try:
                    self._client.close()
                finally:
                    self._client = None

    def _fault(self) -> str | None:
        if self._fault_file is None:
            return None
        try:
            return self._fault_file.read_text().strip() or None
        except OSError:
            return None

    def _clear_fault(self) -> None:
        if self._fault_file is not None:
            self._fault_file.write_text("")

    def _translate(self, exc: Exception, what: str) -> ClickHouseError:
        code = _error_code(exc)
        if code in _DATA_ERROR_CODES:
            return InsertRejected(f"{what}: ClickHouse refused the data (code {code}): {exc}")
        # Anything else (network, closed session, server errors, disk) may pass: retry.
        if not self.embedded:
            self._client = None  # reconnect next time
        return ClickHouseUnavailable(f"{what} failed at {describe_dsn(self.dsn)}: {exc}")

    # -- operations -----------------------------------------------------------------
    def insert_arrow(self, table: str, data: pa.Table, dedup_token: str) -> None:
        """Insert ``data`` as one statement; a repeat with the same token is a no-op."""
        with self._lock:
            fault = self._fault()
            if fault == "unavailable":
                raise ClickHouseUnavailable(f"injected fault: ClickHouse unavailable ({self._fault_file})")
            client = self._connected()
            try:
                client.insert_arrow(table, data, settings={"insert_deduplication_token": dedup_token})
            except Exception as exc:  # sorted into retry / reject below
                raise self._translate(exc, f"insert into {table}") from exc
            if fault == "ack-lost":  # one shot: the next attempt gets through
                self._clear_fault()
                raise ClickHouseUnavailable("injected fault: insert applied but its acknowledgement was lost")
            if fault == "kill-after-insert":  # a crash between insert and offset commit
                os.kill(os.getpid(), signal.SIGKILL)

    def command(self, sql: str) -> Any:
        with self._lock:
            if self._fault() == "unavailable":
                raise ClickHouseUnavailable("injected fault: ClickHouse unavailable")
            try:
                return self._connected().command(sql)
            except ClickHouseError:
                raise
            except Exception as exc:
                raise self._translate(exc, "command") from exc

    def rows(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Sequence[tuple]:
        with self._lock:
            try:
                return self._connected().query(sql, parameters=dict(parameters or {})).result_rows
            except ClickHouseError:
                raise
            except Exception as exc:
                raise self._translate(exc, "query") from exc

    def raw(self, sql: str, fmt: str = "TabSeparatedWithNames", readonly: bool = True) -> bytes:
        """Run a query and return ClickHouse's own output format (the query endpoint)."""
        with self._lock:
            settings = {"readonly": 2} if readonly and not self.embedded else {}
            try:
                return self._connected().raw_query(sql, settings=settings, fmt=fmt)
            except ClickHouseError:
                raise
            except Exception as exc:
                raise self._translate(exc, "query") from exc
