"""The egress planner: ``plan(snapshot, state, policy, now) -> Plan``, pure and deterministic.

No Kafka, faust, clock or logging here: every input is an argument and everything the cycle
decides is in the returned :class:`~streams.autopilot.model.Plan` (recommendations, cycle
report, next state). Same arguments, same plan — which is what makes replays, shadow runs
and ``netpilot autopilot plan --scenario`` meaningful. The steps follow the design
(docs/autopilot-design.md §5.3-5.6, which notes where this order departs from it):

1. gates: stale or implausible inputs -> fail-static (refresh what exists, add nothing);
   the kill switch withdraws everything, ``max_withdraws_per_cycle`` at a time;
2. projection U0 as if no override were in place (placement.py) and the overload set;
3. existing overrides: TTL-expired ones are withdrawn, invalid ones (route gone, link down
   or drained, alternate over its trigger) are *displaced*, valid ones are kept in place;
4. release: kept overrides past their hold whose return keeps the native links under the
   release threshold are withdrawn, smallest first, at most K per cycle (APS "unwind"),
   judged against the peak U0 of the last ``release_cycles`` cycles (trend.py), never one
   reading;
5. greedy: overloaded links by decreasing excess; candidates sorted by stickiness, IPv4
   first, most specific then most preferred alternate, size (candidates.py); the fewest
   moves that relieve a link, preference deciding only what costs no move (selection.py),
   within ADD budgets sized to the need; alternates' room split jointly between the
   overloaded links first (headroom.py, an LP); each move goes to the first alternate with
   room under ``alt_max``, within the per-link move budget and beyond what is reserved for
   the links still to be served;
6. displaced overrides not re-placed are withdrawn at once (no hold);
7. validation: a diff above the limits is not published — the cycle is redone fail-static.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streams.autopilot import gates, headroom, selection, trend
from streams.autopilot import prefixes as px
from streams.autopilot.candidates import Candidates, Exclusions, candidates_on
from streams.autopilot.finish import CycleOutcome, KeptOverride, finish
from streams.autopilot.model import Action, Plan, PlanItem, Reason, Snapshot
from streams.autopilot.placement import Alternate, Placement, Unit, split_units
from streams.autopilot.policy import Policy
from streams.autopilot.state import Override, PlannerState


def plan(snapshot: Snapshot, state: PlannerState, policy: Policy, now: float) -> Plan:
    """One autopilot cycle for one PoP. See the module docstring for the steps."""
    cycle = _Cycle(snapshot, state, policy, now)
    result = cycle.run(static=False)
    if cycle.diff_too_large:
        result = _Cycle(snapshot, state, policy, now).run(static=True, diff_rejected=True)
    return result


_RELAXED_SOLVES = 8
"""At most this many programmes to finish one link beyond its reservations (each ~ms)."""


@dataclass(slots=True)
class _Active:
    """An override in place during this cycle (kept from before, or added now)."""

    prefix: str
    unit: Unit | None
    to: int
    natives: tuple[int, ...]
    alt: Alternate | None
    previous: Override | None

    @property
    def rate(self) -> float:
        if self.unit is not None:
            return self.unit.rate
        return self.previous.rate_bps if self.previous is not None else 0.0

    @property
    def in_place(self) -> Override:
        """The override this one continues: every kept one has it (an ADD of this cycle does not)."""
        if self.previous is None:
            raise AssertionError(f"{self.prefix}: no override in place")
        return self.previous


class _Cycle:
    def __init__(self, snapshot: Snapshot, state: PlannerState, policy: Policy, now: float) -> None:
        self.snap, self.state, self.policy, self.now = snapshot, state, policy, now
        links = snapshot.links
        self.ids = [link.link_id for link in links]
        self.index = {link_id: i for i, link_id in enumerate(self.ids)}
        self.cap = np.array([link.usable_bps for link in links], np.float64)
        self.up = np.array([link.up for link in links], bool)
        drained = np.array([link.drained for link in links], bool)
        self.alt_ok = self.up & ~drained
        self.alt_ok_v6 = self.alt_ok & ~np.array([link.v6_blackhole for link in links], bool)
        th = np.array([policy.for_link(link) for link in links], np.float64).reshape(-1, 4)
        self.hi, self.target, self.alt_max, self.release = th[:, 0], th[:, 1], th[:, 2], th[:, 3]
        self.pl = Placement(snapshot, self.up)
        counter = np.array([np.nan if l.rate_bps is None else l.rate_bps for l in links], np.float64)
        # Traffic the samples do not explain stays where it is: B(l) = max(0, r(l) - observed).
        unexplained = np.where(np.isnan(counter), 0.0, np.maximum(0.0, counter - self.pl.observed))
        self.u0_load = unexplained + self.pl.unroutable + self.pl.native_load
        self.u_actual = np.where(np.isnan(counter), self.pl.observed, counter) / self.cap
        self.has_counter = ~np.isnan(counter)
        self.loads = self.u0_load.copy()
        over = np.nonzero(self.up & (self.u0_load > self.hi * self.cap))[0].tolist()
        excess = self.u0_load - self.target * self.cap
        self.overloaded = sorted(over, key=lambda l: (-excess[l], self.ids[l]))
        split = policy.split_threshold_bps
        if over:
            split = min(split, policy.split_fraction_of_smallest_overloaded * float(self.cap[over].min()))
        self.split_threshold = split if policy.split_enabled else float("inf")
        self.split_adds = 0
        self.pinned: dict[int, set[px.Prefix]] = {}
        self.live: list[Override] = []
        self.expired: list[Override] = []
        for o in sorted(state.overrides.values(), key=lambda o: (o.created_at, o.prefix)):
            (self.expired if o.valid_until < now else self.live).append(o)
            key = px.parse(o.prefix)
            route = self.pl.covering_route(key, strict=False)
            if route >= 0 and o.valid_until >= now:
                self.pinned.setdefault(route, set()).add(key)
        self.cooldowns = {p: t for p, t in state.cooldowns.items() if t > now}
        self.cooling = {px.parse(p) for p in self.cooldowns}
        self.deny = [px.parse(p) for p in policy.deny_prefixes]
        self._units: dict[int, list[Unit]] = {}
        self.kept: dict[str, _Active] = {}
        self.added: dict[str, _Active] = {}
        self.displaced: dict[str, tuple[Override, Reason, Unit | None]] = {}
        self.items: list[PlanItem] = []
        self.diff_too_large = False
        self.lower_bound = 0
        self._grain: dict[int, float] = {}
        """Fewest moves that could relieve this cycle's overloads (selection.lower_bound)."""
        self.greedy_moves = 0

    # -- the cycle -----------------------------------------------------------------------
    def run(self, *, static: bool, diff_rejected: bool = False) -> Plan:
        for o in self.expired:  # the actuator has already dropped these (valid_until passed)
            self._emit_gone(o, "TTL", self._unit_of(o.prefix))
        self.current = gates.totals(self.snap, self.now)
        self.stale = gates.stale_inputs(self.snap, self.policy, self.now)
        self.implausible = gates.implausible_inputs(self.snap, self.current, self.state, self.policy)
        self.fail_static = static or bool(self.stale or self.implausible)
        if self.policy.kill_switch:
            self._kill_switch()
        elif self.fail_static:
            for o in self.live:
                self._keep(o, self._unit_of(o.prefix), check=False)
        else:
            for o in self.live:
                self._keep(o, self._unit_of(o.prefix), check=True)
            self._release()
            self._greedy()
            for prefix, (o, reason, unit) in self.displaced.items():
                if prefix not in self.added:
                    self._emit_gone(o, reason, unit)
            changes = sum(1 for i in self.items if i.reason != "TTL")
            moved = sum(a.rate for a in self.added.values())
            self.diff_too_large = (
                changes > self.policy.max_changes_per_cycle
                or moved > self.policy.max_moved_fraction_of_pop * self.current.total_rate_bps
            )
        for active in self.kept.values():
            self._emit(
                active,
                "REFRESH",
                "KILL_SWITCH" if self.policy.kill_switch else "STICKY",
                active.natives[0] if active.natives else -1,
                None,
            )
        return self._finish(diff_rejected)

    def _keep(self, o: Override, unit: Unit | None, *, check: bool) -> None:
        to = self.index.get(o.to_link, -1)
        natives = tuple(self.pl.natives(unit.route).tolist()) if unit is not None else ()
        alt = None
        if unit is not None and to >= 0:
            alt = next((a for a in self.pl.alternates(unit.route) if a.link == to), None)
        reason: Reason | None = None
        if check:
            v6 = unit is not None and not px.is_v4(unit.key)
            if to < 0 or not self.up[to]:
                reason = "LINK_DOWN"
            elif not self.alt_ok[to]:
                reason = "DRAINED"
            elif unit is None or alt is None or (v6 and not self.alt_ok_v6[to]):
                reason = "ROUTE_WITHDRAWN"
            elif self.loads[to] + unit.rate > self.hi[to] * self.cap[to]:
                reason = "ALT_OVERLOAD"
        if reason is not None:
            self.displaced[o.prefix] = (o, reason, unit)
            return
        active = _Active(o.prefix, unit, to, natives, alt, o)
        self._apply(active, +1)
        self.kept[o.prefix] = active

    def _release(self) -> None:
        due = sorted(
            (a for a in self.kept.values() if self.now >= a.in_place.hold_until), key=lambda a: (a.rate, a.prefix)
        )
        if not due:
            return
        # Judged against the worst U0 of the window, not this cycle's: the load each native
        # would carry at that peak with the remaining overrides still off it.
        cycles = self.policy.release_cycles
        peak, full = trend.window(self.state.u0_history, self.ids, self.u0_load / self.cap, cycles)
        at_peak = self.loads + np.maximum(0.0, peak * self.cap - self.u0_load)
        budget = self.policy.max_withdraws_per_cycle
        for active in due:
            if budget == 0:
                break
            if not active.natives or not all(full[n] for n in active.natives):
                continue
            # One low reading of the prefix's own rate (flow windows still filling) must not
            # make its return look cheap: the larger of this cycle's and the last cycle's.
            share = max(active.rate, active.in_place.rate_bps) / len(active.natives)
            if all(at_peak[n] + share <= self.release[n] * self.cap[n] for n in active.natives):
                for n in active.natives:
                    at_peak[n] += share
                self._withdraw(active, "RELEASE")
                self.cooldowns[active.prefix] = self.now + self.policy.cooldown_s
                budget -= 1

    def _kill_switch(self) -> None:
        for o in self.live:
            self._keep(o, self._unit_of(o.prefix), check=False)
        order = sorted(self.kept.values(), key=lambda a: (a.rate, a.prefix))
        for active in order[: self.policy.max_withdraws_per_cycle]:
            self._withdraw(active, "KILL_SWITCH")

    def _greedy(self) -> None:
        p, pl, n = self.policy, self.pl, len(self.ids)
        todo = [l for l in self.overloaded if self.loads[l] > self.target[l] * self.cap[l]]
        if not todo:
            return
        moved_in, moved_out = np.zeros(n), np.zeros(n)
        taken = {a.unit.key for a in self.kept.values() if a.unit is not None}
        displaced = {px.parse(prefix): reason for prefix, (_, reason, _) in self.displaced.items()}
        best_exact = pl.best_exact(self.alt_ok, self.alt_ok_v6)
        if p.split_enabled:
            # Need-based splitting: a prefix that no alternate can take whole is split too
            # (when its demand is finer than the route), so one of its halves can move.
            room = float(self._room(np.zeros(n)).max(initial=0.0))
            if 0 < room < self.split_threshold:  # no room anywhere: nothing moves, split or not
                self.split_threshold = room
                self._units = {r: u for r, u in self._units.items() if r in self.pinned}
        ex = Exclusions(taken=taken, cooling=self.cooling, deny=self.deny, sticky=displaced)
        cands = [
            candidates_on(l, pl, best_exact, self.alt_ok, self.alt_ok_v6, self._needs_split, self._split, ex)
            for l in todo
        ]
        excess = np.array([self.loads[l] - self.target[l] * self.cap[l] for l in todo])
        need = [selection.lower_bound(c.rate, e, p.fit_epsilon) for c, e in zip(cands, excess)]
        self._grain = {l: selection.grain(c.rate, e, p.fit_epsilon) for l, c, e in zip(todo, cands, excess)}
        self.lower_bound = sum(need)
        link_budget, pop_budget = selection.budgets(need, p)
        frac = p.max_moved_fraction_per_link
        movable = np.array([headroom.movable(pl, c, self.alt_ok, self.alt_ok_v6) for c in cands])
        reserved = np.zeros(movable.shape)
        if len(todo) > 1:
            reserved = headroom.reservations(self._excess(todo), self.cap[todo], movable, self._room(moved_in))[0]
        for j, (link, c) in enumerate(zip(todo, cands)):
            goal = self.target[link] * self.cap[link]
            others = reserved[j + 1 :].sum(axis=0)  # room kept for the links still to serve
            alive = np.ones(len(c), bool)
            failed = np.zeros(len(c), bool)
            made = 0
            while self._budget_left(made, link_budget[j], pop_budget):
                remaining = self.loads[link] - goal
                if remaining <= 0:
                    break
                fits = np.minimum(self.alt_max * self.cap - self.loads, frac * self.cap - moved_in) - others
                alive &= c.rate <= max(0.0, float(fits[self.alt_ok].max(initial=0.0)))  # fits nowhere: out
                picks = selection.choose(c.rate, c.cls, alive, remaining, p.fit_epsilon)
                if not picks:
                    break
                for i in picks:  # largest first; on the first that cannot move, choose again
                    alive[i] = False
                    unit = c.unit(i, pl)
                    if unit.key in taken:
                        break
                    if not self._move(
                        unit, self._alts(unit), link, moved_in, moved_out, displaced.get(unit.key), others
                    ):
                        failed[i] = True
                        break
                    taken.add(unit.key)
                    made += 1
                    self.greedy_moves += 1
                    if not self._budget_left(made, link_budget[j], pop_budget):
                        break
            later = todo[j + 1 :]
            if later and self.loads[link] > goal:
                # Reservations are fractional and prefixes are not: the last move or two of a
                # link may not fit its share. Let it dip into the others' only where the
                # programme says they can still be resolved as well as before.
                budget = min(link_budget[j] - made, pop_budget - self.greedy_moves)
                self._relaxed(link, c, failed, later, movable[j + 1 :], moved_in, moved_out, taken, displaced, budget)
            if len(later) > 1:  # re-plan the rest on the room actually left
                x, _ = headroom.reservations(
                    self._excess(later), self.cap[later], movable[j + 1 :], self._room(moved_in)
                )
                reserved[j + 1 :] = x

    def _relaxed(
        self,
        link: int,
        c: Candidates,
        failed: np.ndarray,
        later: list[int],
        movable: np.ndarray,
        moved_in: np.ndarray,
        moved_out: np.ndarray,
        taken: set[px.Prefix],
        displaced: dict[px.Prefix, Reason],
        budget: int,
    ) -> None:
        """Finish ``link`` with candidates that failed for lack of unreserved room: each move
        is tried on an alternate only if the later links' worst residual does not grow."""
        p, frac = self.policy, self.policy.max_moved_fraction_per_link
        base = headroom.reservations(self._excess(later), self.cap[later], movable, self._room(moved_in))[1]
        left, solves = failed.copy(), 0
        none = np.zeros(len(self.ids))
        while budget > 0 and solves < _RELAXED_SOLVES and len(self.kept) + len(self.added) < p.max_active_overrides:
            remaining = self.loads[link] - self.target[link] * self.cap[link]
            picks = selection.choose(c.rate, c.cls, left, remaining, p.fit_epsilon) if remaining > 0 else []
            if not picks:
                return
            left[picks[0]] = False
            unit = c.unit(picks[0], self.pl)
            if unit.key in taken:
                continue
            for alt in self._alts(unit):
                to = alt.link
                if (
                    self.loads[to] + unit.rate > self.alt_max[to] * self.cap[to]
                    or moved_in[to] + unit.rate > frac * self.cap[to]
                ):
                    continue
                room = self._room(moved_in)
                room[to] = max(0.0, room[to] - unit.rate)
                solves += 1
                if headroom.reservations(self._excess(later), self.cap[later], movable, room)[1] <= base + 1e-9:
                    if self._move(unit, [alt], link, moved_in, moved_out, displaced.get(unit.key), none):
                        taken.add(unit.key)
                        self.greedy_moves += 1
                        budget -= 1
                    break
                if solves >= _RELAXED_SOLVES:
                    return

    def _room(self, moved_in: np.ndarray) -> np.ndarray:
        """Room per link as an alternate: to its alt_max and within its move budget."""
        room = np.minimum(
            self.alt_max * self.cap - self.loads, self.policy.max_moved_fraction_per_link * self.cap - moved_in
        )
        return np.where(self.alt_ok, np.maximum(0.0, room), 0.0)

    def _excess(self, links: list[int]) -> np.ndarray:
        """What each link needs moved, plus a prefix's worth (its grain): room is split as a
        fluid, prefixes are not, and the last move of a link rarely lands on its share."""
        excess = np.array([self.loads[l] - self.target[l] * self.cap[l] for l in links])
        return np.where(excess > 0, excess + np.array([self._grain.get(l, 0.0) for l in links]), 0.0)

    def _alts(self, unit: Unit) -> list[Alternate]:
        ok = self.alt_ok if px.is_v4(unit.key) else self.alt_ok_v6
        return [a for a in self.pl.alternates(unit.route) if ok[a.link]]

    def _budget_left(self, made: int, link_budget: int, pop_budget: int) -> bool:
        return (
            made < link_budget
            and self.greedy_moves < pop_budget
            and len(self.kept) + len(self.added) < self.policy.max_active_overrides
        )

    def _move(
        self,
        unit: Unit,
        alts: list[Alternate],
        link: int,
        moved_in: np.ndarray,
        moved_out: np.ndarray,
        displaced_reason: Reason | None,
        reserved: np.ndarray,
    ) -> bool:
        """Move ``unit`` off ``link`` to the first alternate, in preference order, with room
        for it beyond what is ``reserved`` there for other overloaded links."""
        natives = tuple(self.pl.natives(unit.route).tolist())
        frac = self.policy.max_moved_fraction_per_link
        share = unit.rate / len(natives)
        if moved_out[link] + share > frac * self.cap[link]:
            return False
        piece = unit.split_from is not None
        if piece and self.split_adds >= self.policy.max_split_adds_per_cycle:
            return False
        for alt in alts:
            to = alt.link
            if self.loads[to] + unit.rate + reserved[to] > self.alt_max[to] * self.cap[to]:
                continue
            if moved_in[to] + unit.rate + reserved[to] > frac * self.cap[to]:
                continue
            prefix = px.to_text(unit.key)
            active = _Active(prefix, unit, to, natives, alt, None)
            before = self._utils(link, to)
            self._apply(active, +1)
            self.added[prefix] = active
            self.split_adds += piece
            moved_in[to] += unit.rate
            moved_out[link] += share
            self._emit(active, "ADD", displaced_reason or "OVERLOAD", link, before)
            return True
        return False

    # -- helpers -------------------------------------------------------------------------
    def _needs_split(self, route: int) -> bool:
        return route in self.pinned or self.pl.rate[route] > self.split_threshold

    def _split(self, route: int) -> list[Unit]:
        units = self._units.get(route)
        if units is None:
            pinned = frozenset(self.pinned.get(route, ()))
            key = self.snap.prefixes[route]
            if not self._needs_split(route):
                units = [Unit(key, route, float(self.pl.rate[route]), int(self.pl.samples[route]))]
            else:
                floor = px.V4_OFFSET + self.policy.min_split_len_v4 if px.is_v4(key) else self.policy.min_split_len_v6
                units = split_units(self.pl, route, self.split_threshold, floor, pinned)
            self._units[route] = units
        return units

    def _unit_of(self, prefix: str) -> Unit | None:
        key = px.parse(prefix)
        route = self.pl.covering_route(key, strict=False)
        if route < 0:
            return None
        for unit in self._split(route):
            if unit.key == key:
                return unit
        return Unit(key, route, 0.0, 0, route)  # demand too coarse to tell: no rate of its own

    def _apply(self, active: _Active, sign: int) -> None:
        rate = active.rate
        if active.natives:
            for n in active.natives:
                self.loads[n] -= sign * rate / len(active.natives)
        if active.to >= 0:
            self.loads[active.to] += sign * rate

    def _withdraw(self, active: _Active, reason: Reason) -> None:
        origin = active.natives[0] if active.natives else -1
        before = self._utils(origin, active.to)
        self._apply(active, -1)
        del self.kept[active.prefix]
        self._emit(active, "WITHDRAW", reason, origin, before)

    def _emit_gone(self, o: Override, reason: Reason, unit: Unit | None) -> None:
        """WITHDRAW of an override that is no longer applied (expired or displaced)."""
        to = self.index.get(o.to_link, -1)
        natives = (
            tuple(self.pl.natives(unit.route).tolist())
            if unit is not None
            else tuple(self.index[l] for l in o.from_links if l in self.index)
        )
        active = _Active(o.prefix, unit, to, natives, None, o)
        origin = natives[0] if natives else -1
        share = active.rate / len(natives) if natives else 0.0
        after = self._utils(origin, to)
        before = (
            None if after[0] is None else after[0] - share / self.cap[origin],
            None if after[1] is None else after[1] + active.rate / self.cap[to],
        )
        self._emit(active, "WITHDRAW", reason, origin, before)

    def _utils(self, a: int, b: int) -> tuple[float | None, float | None]:
        return (
            float(self.loads[a] / self.cap[a]) if a >= 0 else None,
            float(self.loads[b] / self.cap[b]) if b >= 0 else None,
        )

    def _emit(
        self,
        active: _Active,
        action: Action,
        reason: Reason,
        origin: int,
        before: tuple[float | None, float | None] | None,
    ) -> None:
        after = self._utils(origin, active.to)
        before = before or after
        prev, unit, snap = active.previous, active.unit, self.snap
        alt = active.alt
        thresholds = {}
        if origin >= 0:
            thresholds = {
                "hi": float(self.hi[origin]),
                "target": float(self.target[origin]),
                "release": float(self.release[origin]),
            }
        if active.to >= 0:
            thresholds["alt_max"] = float(self.alt_max[active.to])
        if action == "ADD":
            created, hold = self.now, self.now + self.policy.hold_s
        else:
            created, hold = active.in_place.created_at, active.in_place.hold_until
        split_from = prev.split_from if prev is not None else None
        if unit is not None and unit.split_from is not None:
            split_from = px.to_text(snap.prefixes[unit.split_from])
        key = unit.key if unit is not None else px.parse(active.prefix)
        self.items.append(
            PlanItem(
                action=action,
                reason=reason,
                rank=0,
                prefix=active.prefix,
                afi=px.afi(key),
                split_from=split_from,
                rate_bps=float(active.rate),
                samples=unit.samples if unit is not None else 0,
                from_link=self.ids[origin] if origin >= 0 else (prev.from_links[0] if prev and prev.from_links else ""),
                from_links=tuple(self.ids[n] for n in active.natives) or (prev.from_links if prev else ()),
                to_link=self.ids[active.to] if active.to >= 0 else active.in_place.to_link,
                from_before=before[0],
                from_after=after[0],
                to_before=before[1],
                to_after=after[1],
                thresholds=thresholds,
                route_prefix=px.to_text(snap.prefixes[snap.routes.prefix[alt.row]]) if alt else None,
                next_hop=snap.routes.next_hop[alt.row] if alt else None,
                as_path=snap.routes.as_path[alt.row] if alt else (),
                created_at=created,
                hold_until=hold,
                valid_until=self.now if action == "WITHDRAW" else self.now + self.policy.ttl,
            )
        )

    def _finish(self, diff_rejected: bool) -> Plan:
        kept = {
            prefix: KeptOverride(
                in_place=active.in_place, rate=active.rate, natives=tuple(self.ids[n] for n in active.natives)
            )
            for prefix, active in self.kept.items()
        }
        return finish(
            CycleOutcome(
                pop=self.snap.pop,
                now=self.now,
                policy=self.policy,
                previous=self.state,
                diff_rejected=diff_rejected,
                items=tuple(self.items),
                kept=kept,
                cooldowns=self.cooldowns,
                current=self.current,
                link_ids=tuple(self.ids),
                cap=self.cap,
                up=self.up,
                has_counter=self.has_counter,
                hi=self.hi,
                u0_load=self.u0_load,
                loads=self.loads,
                u_actual=self.u_actual,
                overloaded=tuple(self.overloaded),
                stale=tuple(self.stale),
                implausible=tuple(self.implausible),
                fail_static=self.fail_static,
                moves_lower_bound=self.lower_bound,
            )
        )
