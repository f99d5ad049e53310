"""Load and validate an inventory file into wire messages, collecting *every* mistake.

A user fixing an inventory wants all problems at once, each as ``file:line: path: what``,
so schema errors (pydantic) and cross-record checks (duplicates, key characters,
threshold order) are gathered into one :class:`InventoryError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from netpilot.errors import ConfigError
from netpilot.wire.links import LinkInventory, LinkThresholds
from producers.inventory.model import InventorySpec, RouterSpec, SnmpSpec, ThresholdsSpec, check_threshold_order
from producers.inventory.yamlmarks import Issue, MarkedDocument, YamlSyntaxError, load_marked

# Names become Kafka keys (``pop|link_id``) and metric labels: keep them tame.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")


class InventoryError(ConfigError):
    """The inventory file is invalid; ``issues`` lists every problem found."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        n = len(issues)
        head = f"inventory has {n} problem{'s' if n != 1 else ''}:"
        super().__init__("\n".join([head, *("  " + i.describe() for i in issues)]))


@dataclass(frozen=True)
class RouterTarget:
    """What the SNMP poller needs about one router."""

    pop: str
    router: str
    snmp: SnmpSpec
    links: tuple[LinkInventory, ...]


@dataclass(frozen=True)
class Inventory:
    source: str
    links: tuple[LinkInventory, ...]
    routers: tuple[RouterTarget, ...]

    def keyed(self) -> dict[str, LinkInventory]:
        return {f"{link.pop}|{link.link_id}": link for link in self.links}


def load_inventory(path: Path | str) -> Inventory:
    """Parse and validate; raise :class:`InventoryError` listing every problem."""
    try:
        doc = load_marked(Path(path))
    except YamlSyntaxError as exc:
        raise InventoryError([exc.issue]) from exc
    issues = list(doc.issues)
    if not isinstance(doc.value, dict):
        issues.append(doc.issue((), "the top level must be a mapping with a 'pops:' key"))
        raise InventoryError(issues)
    try:
        spec = InventorySpec.model_validate(doc.value)
    except ValidationError as exc:
        issues.extend(_pydantic_issues(exc, doc))
        raise InventoryError(issues) from exc
    issues.extend(_cross_checks(spec, doc))
    if issues:
        raise InventoryError(issues)
    return _to_wire(spec, doc.file)


def _pydantic_issues(exc: ValidationError, doc: MarkedDocument) -> list[Issue]:
    out = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        # model-level validators report their message under the model's own path
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown key {loc[-1]!r} (typo?)"
        elif err["type"] == "missing":
            msg = f"required key {loc[-1]!r} is missing"
        elif err["type"] == "literal_error":
            msg = f"{msg} (got {err.get('input')!r})"
        elif "input" in err and not isinstance(err["input"], (dict, list)):
            msg = f"{msg} (got {err['input']!r})"
        out.append(doc.issue(loc, msg))
    return out


def _cross_checks(spec: InventorySpec, doc: MarkedDocument) -> list[Issue]:
    issues: list[Issue] = []
    if not spec.pops:
        issues.append(doc.issue(("pops",), "no PoP defined"))
    for pop, pop_spec in spec.pops.items():
        _check_name(issues, doc, ("pops", pop), pop, "PoP name")
        _check_thresholds(issues, doc, ("pops", pop, "thresholds"), pop_spec.thresholds)
        seen_links: dict[str, tuple[str, ...]] = {}
        for router, r in pop_spec.routers.items():
            rpath = ("pops", pop, "routers", router)
            _check_name(issues, doc, rpath, router, "router name")
            # (field, value) -> link id: one interface must not back two links
            seen_if: dict[tuple[str, object], str] = {}
            for link_id, link in r.links.items():
                lpath = (*rpath, "links", link_id)
                _check_name(issues, doc, lpath, link_id, "link id")
                if link_id in seen_links:
                    issues.append(
                        doc.issue(
                            lpath,
                            f"link id {link_id!r} is used twice in PoP "
                            f"{pop!r} (also on line {doc.line_of(seen_links[link_id])}); "
                            "link ids must be unique per PoP",
                        )
                    )
                else:
                    seen_links[link_id] = lpath
                for field, label in (("if_name", "interface"), ("if_index", "ifIndex")):
                    value = getattr(link, field)
                    if value is None:
                        continue
                    other = seen_if.setdefault((field, value), link_id)
                    if other != link_id:
                        issues.append(
                            doc.issue(
                                (*lpath, field), f"{label} {value!r} is already link {other!r} of router {router!r}"
                            )
                        )
                _check_thresholds(issues, doc, (*lpath, "thresholds"), _merged(pop_spec.thresholds, link.thresholds))
            if r.links and r.snmp is None and r.counters == "snmp":
                issues.append(
                    doc.issue(
                        rpath,
                        f"router {router!r} has links but no 'snmp:' "
                        "target, so its counters cannot be polled (write "
                        "'counters: external' if link-stats come from elsewhere)",
                    )
                )
            if r.counters == "external" and r.snmp is not None:
                issues.append(
                    doc.issue(
                        (*rpath, "counters"),
                        f"router {router!r} says "
                        "'counters: external' but also has an 'snmp:' target; "
                        "keep one (external counters are not polled)",
                    )
                )
    return issues


def _check_name(issues: list[Issue], doc: MarkedDocument, path: tuple, name: str, what: str) -> None:
    if not _NAME.match(name):
        issues.append(
            doc.issue(
                path,
                f"{what} {name!r} may only contain letters, digits and "
                "'._:/-' (it becomes part of a Kafka key 'pop|link_id')",
            )
        )


def _check_thresholds(issues: list[Issue], doc: MarkedDocument, path: tuple, t: ThresholdsSpec) -> None:
    problem = check_threshold_order(t)
    if problem:
        issues.append(doc.issue(path, problem))


def _merged(pop: ThresholdsSpec, link: ThresholdsSpec) -> ThresholdsSpec:
    return ThresholdsSpec(**{k: v if v is not None else getattr(pop, k) for k, v in link.model_dump().items()})


def _to_wire(spec: InventorySpec, source: str) -> Inventory:
    links: list[LinkInventory] = []
    routers: list[RouterTarget] = []
    for pop, pop_spec in spec.pops.items():
        for router, r in pop_spec.routers.items():
            router_links = tuple(
                _link(pop, router, r, link_id, pop_spec.thresholds) for link_id, link in r.links.items()
            )
            links.extend(router_links)
            if r.snmp is not None:
                routers.append(RouterTarget(pop, router, r.snmp, router_links))
    return Inventory(source, tuple(links), tuple(routers))


def _link(pop: str, router: str, r: RouterSpec, link_id: str, pop_thresholds: ThresholdsSpec) -> LinkInventory:
    link = r.links[link_id]
    t = _merged(pop_thresholds, link.thresholds)
    return LinkInventory(
        pop=pop,
        link_id=link_id,
        router=router,
        exporter=str(r.exporters[0]) if r.exporters else None,
        if_name=link.if_name,
        if_index=link.if_index,
        capacity_bps=link.capacity,
        peer_asn=link.peer_asn,
        peer_type=link.peer_type,
        next_hops=link.next_hops,
        thresholds=LinkThresholds(**t.model_dump()),
        drained=link.drained,
        description=link.description,
    )
