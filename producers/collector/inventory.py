"""The collector's enrichment tables: exporter -> router, (router, ifIndex) -> link, routes.

Two file formats are read, told apart by their shape:

* the **project's inventory** (``pops:`` is a mapping; examples/inventory.yaml, validated by
  ``producers.inventory.load``) and **routes file** (rows with ``pop``/``link``; read by
  ``producers.routes.source``) -- the files ``netpilot inventory publish`` / ``netpilot
  routes load`` and ``netpilot simulate`` use, so one inventory serves every component;
* the collector's original minimal format (``pops:`` is a list), kept for existing configs:

    pops:
      - name: fra1
        routers:
          - name: fra1-edge1
            exporter: 192.0.2.1          # address the router exports flows from
            sampling_rate: 1000          # optional: default when it states none
            links:
              - {link_id: fra1-transit-a, if_index: 7}
    routes:                              # or in a separate routes file
      - {prefix: 198.51.100.0/24, dst_as: 64501}

From the project's inventory the collector takes every exporter address of a router and the
links that have an ``if_index`` (flows name the interface by ifIndex; a link known only by
``if_name`` cannot be matched until the poller has resolved it, so its flows are flagged
LINK_UNKNOWN). From project routes it takes prefix -> origin AS, the first route per prefix.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from netpilot.errors import ConfigError
from netpilot.settings import read_yaml
from netpilot.wire.flows import str_to_addr


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Link(_Model):
    link_id: str = Field(min_length=1)
    if_index: int = Field(ge=0, le=0xFFFFFFFF)


class Router(_Model):
    name: str = Field(min_length=1)
    exporter: str
    sampling_rate: int | None = Field(default=None, ge=1)
    links: tuple[Link, ...] = ()

    @field_validator("exporter")
    @classmethod
    def _ip(cls, v: str) -> str:
        return str(ipaddress.ip_address(v))

    @property
    def exporter_addr(self) -> bytes:
        return str_to_addr(self.exporter)


class Pop(_Model):
    name: str = Field(min_length=1)
    routers: tuple[Router, ...] = ()


class Route(_Model):
    prefix: str
    dst_as: int = Field(default=0, ge=0, le=0xFFFFFFFF)

    @field_validator("prefix")
    @classmethod
    def _net(cls, v: str) -> str:
        return str(ipaddress.ip_network(v, strict=False))


class Inventory(_Model):
    pops: tuple[Pop, ...] = ()
    routes: tuple[Route, ...] = ()

    def routers(self) -> list[tuple[Pop, Router]]:
        return [(p, r) for p in self.pops for r in p.routers]


def load_inventory(inventory_file: Path | None, routes_file: Path | None = None) -> Inventory:
    data: dict = {}
    try:
        if inventory_file is not None:
            data = read_yaml(inventory_file)
            if isinstance(data.get("pops"), dict):
                data = {**data, "pops": _project_pops(inventory_file)}
        if routes_file is not None:
            routes = read_yaml(routes_file).get("routes", [])
            if routes and isinstance(routes[0], dict) and "pop" in routes[0]:
                routes = _project_routes(routes_file)
            data = {**data, "routes": [*data.get("routes", []), *routes]}
        inv = Inventory.model_validate(data)
    except ValidationError as exc:
        where = inventory_file or routes_file
        raise ConfigError(f"{where}: invalid inventory: {exc}") from exc
    seen: dict[bytes, str] = {}
    for _, r in inv.routers():
        if r.exporter_addr in seen:
            raise ConfigError(
                f"{inventory_file}: exporter {r.exporter} is listed for both {seen[r.exporter_addr]} and {r.name}"
            )
        seen[r.exporter_addr] = r.name
    return inv


def _project_pops(path: Path) -> list[dict]:
    """The project's inventory (validated with file:line errors) in the minimal shape."""
    from producers.inventory.load import load_inventory as load_project_inventory
    from producers.inventory.model import InventorySpec

    load_project_inventory(path)  # raises InventoryError listing every problem
    spec = InventorySpec.model_validate(read_yaml(path))
    pops = []
    for pop, p in spec.pops.items():
        routers: list[dict[str, Any]] = []
        for name, r in p.routers.items():
            links = [
                {"link_id": link_id, "if_index": link.if_index}
                for link_id, link in r.links.items()
                if link.if_index is not None
            ]
            # one entry per exporter address: the enricher maps each address to the router
            routers.extend({"name": name, "exporter": e, "links": links} for e in r.exporters)
        pops.append({"name": pop, "routers": routers})
    return pops


def _project_routes(path: Path) -> list[dict]:
    """Project routes (pop, link, prefix, as_path...) -> prefix -> origin AS, first wins."""
    from producers.routes.source import load_routes_file

    seen: dict[str, int] = {}
    for route in load_routes_file(path):
        seen.setdefault(route.prefix, route.origin_as)
    return [{"prefix": prefix, "dst_as": asn} for prefix, asn in seen.items()]
