"""Wait for the inventory file to hold a different, valid inventory.

Long-running producers (SNMP poller, BMP collector) take an edited inventory into use
without a restart; a broken edit is rejected once (counted, logged, kept for health) and
the previous inventory stays in use until the file changes again.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from pathlib import Path

from prometheus_client import Counter

from netpilot.errors import ConfigError
from netpilot.obs.logging import get_logger
from producers.inventory.load import Inventory, load_inventory

log = get_logger("netpilot.inventory.watch")


def file_digest(path: Path) -> bytes | None:
    try:
        return hashlib.sha256(path.read_bytes()).digest()
    except OSError:
        return None


class InventoryWatcher:
    """``rejected`` holds why the latest edit was refused (None once a valid one is in use)."""

    def __init__(
        self,
        path: Path,
        check_s: float,
        errors: Counter,
        validate: Callable[[Inventory], None] = lambda _inv: None,
        keeping: str = "keeping the previous one",
    ) -> None:
        self.path = path
        self.check_s = check_s
        self.rejected: str | None = None
        self._errors = errors
        self._validate = validate
        self._keeping = keeping

    async def next(self, digest: bytes | None) -> tuple[Inventory, bytes | None]:
        """The next valid inventory after the file stops matching ``digest``, with its digest."""
        while True:
            await asyncio.sleep(self.check_s)
            current = file_digest(self.path)
            if current is None or current == digest:
                continue
            digest = current  # a broken edit is reported once, not every check
            try:
                inventory = load_inventory(self.path)
                self._validate(inventory)
            except ConfigError as exc:
                self._errors.inc()
                self.rejected = str(exc)
                log.warning(f"inventory change rejected; {self._keeping}", error=str(exc).splitlines()[:3])
                continue
            self.rejected = None
            return inventory, digest
