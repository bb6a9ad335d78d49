"""Who can handle a part of an order: the site's departments and local governments, and the other
platform (110 for a 12345 matter, 12345 for a 110 one) wherever this installation can reach it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from app.errors import UnknownHandler
from hotline.loop_site import PLATFORM_KIND
from hotline.platforms import Service
from hotline.site import Site

PLATFORM_NAMES = {Service.HOTLINE_12345: "12345政务服务便民热线", Service.POLICE_110: "110报警服务台"}


@dataclass(frozen=True)
class Handler:
    id: str
    kind: str  # platform | local_government | department
    name: str
    district: str | None = None
    categories: tuple[str, ...] = ()
    contacts: tuple[str, ...] = ()

    @property
    def platform(self) -> Service | None:
        return Service(self.id) if self.kind == PLATFORM_KIND else None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "district": self.district,
            "categories": list(self.categories),
            "contacts": list(self.contacts),
        }


class Handlers:
    """The handlers of one installation. ``local``: the platforms whose calls it takes."""

    def __init__(self, site: Site) -> None:
        self.local = tuple(site.exchange.platforms)
        self.peers = tuple(site.exchange.peers)
        self._by_id: dict[str, Handler] = {
            h.id: Handler(h.id, h.kind, h.name, h.district, h.categories, h.contacts) for h in site.handlers
        }
        for platform in (*self.local, *self.peers):
            self._by_id[platform.value] = Handler(platform.value, PLATFORM_KIND, PLATFORM_NAMES[platform])

    def get(self, handler_id: str) -> Handler:
        try:
            return self._by_id[handler_id]
        except KeyError:
            raise UnknownHandler(f"no handler {handler_id!r}", details={"handler": handler_id}) from None

    def all(self) -> list[Handler]:
        return list(self._by_id.values())

    def suggest(self, dispatch: Iterable[dict[str, Any]]) -> list[str]:
        """Handler ids for the routing's dispatch suggestion (110, the local government of the named
        district, the department of the category), those this site has."""
        found: list[str] = []
        for d in dispatch:
            for h in self._by_id.values():
                if (
                    d.get("to") == "110"
                    and h.id == Service.POLICE_110.value
                    or d.get("to") == "local_government"
                    and d.get("district")
                    and h.district == d["district"]
                    or d.get("to") == "department"
                    and d.get("category") in h.categories
                ):
                    if h.id not in found:
                        found.append(h.id)
        return found
