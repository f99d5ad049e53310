"""Poll one router: resolve ifName -> ifIndex, read IF-MIB counters, turn them into link-stats.

No scheduling and no Kafka here (see :mod:`producers.linkstats.poller`): one call of
:meth:`RouterPoller.poll` is one poll, raising :class:`AgentError` if the agent fails.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from netpilot.wire.links import LinkInventory, LinkStats
from producers.linkstats.rates import Reading, compute_rates
from producers.linkstats.snmp import AgentError, SnmpClient

SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
IF_NAME = "1.3.6.1.2.1.31.1.1.1.1"
# column -> field; ifXTable (31.1.1.1.x) and ifTable (2.2.1.x)
COLUMNS = {
    "1.3.6.1.2.1.31.1.1.1.10": "out_octets",  # ifHCOutOctets
    "1.3.6.1.2.1.31.1.1.1.6": "in_octets",  # ifHCInOctets
    "1.3.6.1.2.1.31.1.1.1.15": "high_speed",  # ifHighSpeed (Mbit/s)
    "1.3.6.1.2.1.31.1.1.1.19": "discontinuity",  # ifCounterDiscontinuityTime
    IF_NAME: "if_name",
    "1.3.6.1.2.1.31.1.1.1.18": "if_alias",
    "1.3.6.1.2.1.2.2.1.8": "oper_status",  # 1 = up
    "1.3.6.1.2.1.2.2.1.13": "in_discards",
    "1.3.6.1.2.1.2.2.1.14": "in_errors",
    "1.3.6.1.2.1.2.2.1.19": "out_discards",
    "1.3.6.1.2.1.2.2.1.20": "out_errors",
}


@dataclass
class PollResult:
    stats: list[LinkStats]
    resets: int
    wraps: int
    unresolved: list[str]
    """link ids whose interface the agent does not have (counted, not published)."""


class RouterPoller:
    def __init__(
        self, pop: str, router: str, links: tuple[LinkInventory, ...], client: SnmpClient, rate_slack: float = 1.5
    ) -> None:
        self.pop, self.router = pop, router
        self.links = links
        self.client = client
        self.rate_slack = rate_slack
        self._index: dict[str, int] = {}  # link_id -> ifIndex
        self._missing: list[str] = []  # links the agent had no interface for at the last resolve
        self._prev: Reading | None = None
        self._prev_links: tuple[str, ...] = ()

    async def resolve(self) -> list[str]:
        """Map each link to an ifIndex (walking ifName when a link names its interface).
        Returns the link ids that could not be resolved."""
        by_name: dict[str, int] = {}
        if any(link.if_name for link in self.links):
            by_name = {str(v): k for k, v in (await self.client.walk(IF_NAME)).items()}
        index: dict[str, int] = {}
        missing: list[str] = []
        for link in self.links:
            if link.if_name is not None and link.if_name in by_name:
                index[link.link_id] = by_name[link.if_name]
            elif link.if_name is None and link.if_index is not None:
                index[link.link_id] = link.if_index
            else:
                missing.append(link.link_id)
        self._index = index
        self._missing = missing
        return missing

    async def poll(self) -> PollResult:
        if not self._index or self._missing:
            await self.resolve()
            if not self._index:
                return PollResult([], 0, 0, list(self._missing))
        links = [link for link in self.links if link.link_id in self._index]
        oids = [SYS_UPTIME] + [f"{col}.{self._index[link.link_id]}" for link in links for col in COLUMNS]
        t0 = time.time()
        values = await self.client.get(oids)
        ts = (t0 + time.time()) / 2.0
        uptime = values.get(SYS_UPTIME)
        if uptime is None:
            raise AgentError("agent-error", f"{self.router}: no sysUpTime in the response")

        rows, unresolved = [], list(self._missing)
        for link in links:
            idx = self._index[link.link_id]
            row = {f: values.get(f"{col}.{idx}") for col, f in COLUMNS.items()}
            if (
                row["out_octets"] is None
                or row["in_octets"] is None
                or (link.if_name is not None and row["if_name"] != link.if_name)
            ):
                unresolved.append(link.link_id)  # renumbered or removed: re-resolve next poll
                continue
            rows.append((link, idx, row))
        if len(unresolved) > len(self._missing):
            self._index = {}

        reading = Reading(
            ts=ts,
            uptime_ticks=int(uptime),
            out_octets=np.array([r["out_octets"] for _, _, r in rows], dtype=np.uint64),
            in_octets=np.array([r["in_octets"] for _, _, r in rows], dtype=np.uint64),
            discontinuity=np.array([r["discontinuity"] or 0 for _, _, r in rows], dtype=np.uint32),
            speed_bps=np.array([(r["high_speed"] or 0) * 1e6 for _, _, r in rows], dtype=np.float64),
        )
        link_ids = tuple(link.link_id for link, _, _ in rows)
        rates = None
        if self._prev is not None and self._prev_links == link_ids:
            rates = compute_rates(self._prev, reading, slack=self.rate_slack)
            if rates.agent_restarted:
                self._index = {}  # ifIndex values may be renumbered after a restart
        self._prev, self._prev_links = reading, link_ids

        stats = []
        for i, (link, idx, row) in enumerate(rows):
            reset = bool(rates.reset[i]) if rates is not None else False
            live = rates if rates is not None and not reset else None  # a rate for this reading
            stats.append(
                LinkStats(
                    pop=self.pop,
                    router=self.router,
                    link_id=link.link_id,
                    if_index=idx,
                    if_name=row["if_name"],
                    if_alias=row["if_alias"] or None,
                    source="snmp",
                    ts=ts,
                    interval_s=rates.interval_s if rates is not None else None,
                    out_octets=row["out_octets"],
                    in_octets=row["in_octets"],
                    out_octets_delta=int(live.out_delta[i]) if live is not None else None,
                    in_octets_delta=int(live.in_delta[i]) if live is not None else None,
                    out_bps=float(live.out_bps[i]) if live is not None else None,
                    in_bps=float(live.in_bps[i]) if live is not None else None,
                    speed_bps=float(reading.speed_bps[i]) or None,
                    oper_up=row["oper_status"] == 1,
                    out_discards=row["out_discards"],
                    out_errors=row["out_errors"],
                    in_discards=row["in_discards"],
                    in_errors=row["in_errors"],
                    counter_reset=reset,
                    counter_wrap=bool(live.wrapped[i]) if live is not None else False,
                )
            )
        resets = int(rates.reset.sum()) if rates is not None else 0
        wraps = int(rates.wrapped.sum()) if rates is not None else 0
        return PollResult(stats, resets, wraps, unresolved)
