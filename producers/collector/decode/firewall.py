"""Firewall event records (Cisco ASA/FTD NSEL, any exporter of IPFIX firewallEvent, IE 233).

A firewall exports *events* in the life of a connection, not flows: created (1), deleted
(2, the teardown), denied (3), alert (4) and update (5). Only deleted and update records
carry traffic counters, and they overlap. The ASA sends, for a connection that lives past
its flow-update interval, update records with the bytes of each interval (at the timer,
and one more at teardown for the last interval), and then the teardown with the bytes of
the whole connection. For a shorter connection it sends the teardown only. So:

* an update record is always counted;
* a teardown is counted only when its connection sent no update record: with the
  connection id in the records (NF_F_CONN_ID, IE 148) that is known per connection; without
  it, a teardown counts only as long as its observation domain has never sent an update;
* created, denied and alert records are kept as rows (the ``fw_event`` column says which)
  with their counters zeroed: they carry none, or none that a teardown will not repeat.

Which connections sent updates is remembered in numpy arrays per observation domain,
bounded (``MAX_FLOWS`` per domain, ``MAX_DOMAINS`` domains, least recently updated dropped
first). A connection forgotten there, or one that sent updates before the collector
started, has its teardown counted on top of its updates: the bounded error of this rule.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from netpilot.wire.flows import FirewallEvent
from producers.collector.decode.templates import DomainKey


@dataclass
class _Updated:
    ids: np.ndarray  # sorted, unique connection ids that sent an update
    last: np.ndarray  # when each last did (ms), to drop the stalest first
    any_update: bool = False


class FirewallState:
    MAX_FLOWS = 1 << 17
    MAX_DOMAINS = 64

    def __init__(self, max_flows: int = MAX_FLOWS, max_domains: int = MAX_DOMAINS) -> None:
        self.max_flows = max_flows
        self.max_domains = max_domains
        self._domains: OrderedDict[DomainKey, _Updated] = OrderedDict()

    def __len__(self) -> int:
        return sum(len(d.ids) for d in self._domains.values())

    def counted(self, domain: DomainKey, event: np.ndarray, conn_id: np.ndarray | None, now_ms: int) -> np.ndarray:
        """Which records' counters count (bool per record), updating the state."""
        update = event == FirewallEvent.UPDATE
        teardown = event == FirewallEvent.DELETED
        counted = update.copy()
        has_update, has_teardown = bool(update.any()), bool(teardown.any())
        if not has_update and not has_teardown:
            return counted
        st = self._domains.get(domain)
        if st is None and has_update:
            if len(self._domains) >= self.max_domains:
                self._domains.popitem(last=False)
            st = self._domains[domain] = _Updated(np.zeros(0, np.uint64), np.zeros(0, np.int64))
        if st is not None:
            self._domains.move_to_end(domain)
        if has_update:
            assert st is not None
            st.any_update = True
            if conn_id is not None:
                self._remember(st, conn_id[update], now_ms)
        if has_teardown:
            if st is None:
                counted |= teardown
            elif conn_id is None:
                if not st.any_update:
                    counted |= teardown
            else:
                ids = conn_id[teardown]
                counted[teardown] = ~_member(ids, st.ids)
                gone = _member(st.ids, np.unique(ids))
                if gone.any():  # the connection is over: forget it
                    st.ids, st.last = st.ids[~gone], st.last[~gone]
        return counted

    def _remember(self, st: _Updated, ids: np.ndarray, now_ms: int) -> None:
        ids = np.unique(ids.astype(np.uint64))
        all_ids = np.concatenate([st.ids, ids])
        all_last = np.concatenate([st.last, np.full(len(ids), now_ms, np.int64)])
        order = np.lexsort((all_last, all_ids))  # by id, then time: the newest last in a run
        all_ids, all_last = all_ids[order], all_last[order]
        newest = np.r_[all_ids[1:] != all_ids[:-1], True]
        all_ids, all_last = all_ids[newest], all_last[newest]
        if len(all_ids) > self.max_flows:
            keep = np.sort(np.argpartition(-all_last, self.max_flows)[: self.max_flows])
            all_ids, all_last = all_ids[keep], all_last[keep]
        st.ids, st.last = all_ids, all_last


def _member(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """``values`` in ``sorted_set`` (sorted, unique), without re-sorting the set."""
    if not len(sorted_set):
        return np.zeros(len(values), np.bool_)
    v = values.astype(np.uint64)
    i = np.minimum(np.searchsorted(sorted_set, v), len(sorted_set) - 1)
    return sorted_set[i] == v
