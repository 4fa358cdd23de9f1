"""The offline master-data cache: what a workstation validates scans against while the
cloud is out of reach. Filled by pulls of `GET /api/v1/edge/masterdata` (full, then
incremental from the last cursor) and kept on disk, written atomically, so a restarted
agent validates at once without the network.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

SECTIONS = (
    "items",
    "locations",
    "work_centers",
    "operators",
    "suppliers",
    "customers",
    "work_orders",
)


@dataclass(frozen=True)
class Component:
    item: str
    location: str
    planned_quantity: Decimal
    issue_method: str


@dataclass(frozen=True)
class WorkOrder:
    code: str
    item: str
    status: str
    planned_quantity: Decimal
    warehouse: str | None
    components: tuple[Component, ...] = ()

    def component(self, item: str) -> Component | None:
        return next((c for c in self.components if c.item == item), None)


@dataclass
class MasterData:
    """Rows by code, per section, as the cloud sent them."""

    sections: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {name: {} for name in SECTIONS}
    )
    cursor: str | None = None

    def apply(self, pull: dict[str, Any]) -> None:
        """Merge a pull: a full pull replaces everything, an incremental one upserts
        by code and drops work orders that can no longer be posted to and inactive
        operators."""
        if pull.get("full"):
            self.sections = {name: {} for name in SECTIONS}
        for name in SECTIONS:
            rows = self.sections[name]
            for row in pull.get(name, []):
                if _dropped(name, row):
                    rows.pop(row["code"], None)
                else:
                    rows[row["code"]] = row
        self.cursor = pull.get("cursor", self.cursor)

    def item(self, code: str) -> dict[str, Any] | None:
        return self.sections["items"].get(code)

    def item_by_gtin(self, gtin: str) -> dict[str, Any] | None:
        wanted = gtin.zfill(14)
        return next((i for i in self.sections["items"].values() if i.get("gtin") == wanted), None)

    def location(self, code: str) -> dict[str, Any] | None:
        return self.sections["locations"].get(code)

    def operator(self, badge: str) -> dict[str, Any] | None:
        return self.sections["operators"].get(badge)

    def work_center(self, code: str) -> dict[str, Any] | None:
        return self.sections["work_centers"].get(code)

    def supplier(self, code: str) -> dict[str, Any] | None:
        return self.sections["suppliers"].get(code)

    def customer(self, code: str) -> dict[str, Any] | None:
        return self.sections["customers"].get(code)

    def work_order(self, code: str) -> WorkOrder | None:
        row = self.sections["work_orders"].get(code)
        if row is None:
            return None
        return WorkOrder(
            code=row["code"],
            item=row["item"],
            status=row["status"],
            planned_quantity=Decimal(row["planned_quantity"]),
            warehouse=row.get("warehouse"),
            components=tuple(
                Component(
                    item=c["item"],
                    location=c["location"],
                    planned_quantity=Decimal(c["planned_quantity"]),
                    issue_method=c.get("issue_method", "manual"),
                )
                for c in row.get("components", [])
            ),
        )

    def counts(self) -> dict[str, int]:
        return {name: len(rows) for name, rows in self.sections.items()}


def _dropped(section: str, row: dict[str, Any]) -> bool:
    if section == "work_orders":
        return not row.get("postable", True)
    if section == "operators":
        return not row.get("active", True)
    return False


class MasterDataCache:
    """The cache on disk: one JSON file, replaced atomically (write, fsync, rename)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self.data = self._load()

    def _load(self) -> MasterData:
        if not self.path.exists():
            return MasterData()
        body = json.loads(self.path.read_text(encoding="utf-8"))
        data = MasterData(cursor=body.get("cursor"))
        for name in SECTIONS:
            data.sections[name] = body.get("sections", {}).get(name, {})
        return data

    def apply(self, pull: dict[str, Any]) -> None:
        with self._lock:
            self.data.apply(pull)
            self._save()

    def _save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        body = json.dumps({"cursor": self.data.cursor, "sections": self.data.sections})
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
