"""One coroutine on an event loop of its own thread, for services whose work is asyncio
(the SNMP poller, the BMP collector) behind the synchronous ``Service`` interface.

What dies in the loop is kept in ``crash`` for the service's ``health()`` rather than lost
with the thread; ``stop()`` cancels the coroutine from outside and waits for the thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from netpilot.obs.logging import get_logger

log = get_logger("netpilot.loopthread")


class LoopThread:
    """Runs ``main()`` until it returns, raises or is cancelled by ``stop()``.

    ``ready`` is set once the loop runs (``ready_when_running``) or by ``main`` itself when
    it has more to do before it can serve (bind a socket, say); it is always set when the
    thread ends, so ``start`` never waits for a loop that already died. ``before_close``
    runs on the loop's thread before the loop closes: clients whose timers live on the loop
    are closed there.
    """

    def __init__(
        self,
        name: str,
        main: Callable[[], Coroutine[Any, Any, None]],
        *,
        ready_when_running: bool = True,
        before_close: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.ready = threading.Event()
        self.crash: str | None = None
        self._main = main
        self._ready_when_running = ready_when_running
        self._before_close = before_close
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self, timeout_s: float = 30.0) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        if not self.ready.wait(timeout_s) or self.crash:
            raise RuntimeError(f"{self.name} did not start: {self.crash or 'timeout'}")

    @property
    def ended(self) -> bool:
        """Started once and no longer running (returned, crashed or stopped)."""
        return self._thread is not None and not self._thread.is_alive()

    def stop(self, timeout_s: float = 30.0) -> None:
        loop, task = self._loop, self._task
        if loop is not None and task is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:  # closed between the check and the call: nothing to cancel
                pass
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            self._task = loop.create_task(self._main())
            if self._ready_when_running:
                self.ready.set()
            loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # noqa: BLE001 - surfaced through the service's health()
            self.crash = f"{type(exc).__name__}: {exc}"
            log.error("loop died", thread=self.name, error=self.crash)
        finally:
            self.ready.set()
            if self._before_close is not None:
                self._before_close()
            loop.run_until_complete(asyncio.sleep(0))  # let what before_close cancelled finish
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
