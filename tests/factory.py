"""Building events and a small tenant setup for tests."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

BASE_TIME = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)


def at(minutes: float) -> str:
    return (BASE_TIME + timedelta(minutes=minutes)).isoformat()


def event(type_: str, minutes: float, payload: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {
        "event_id": str(kw.pop("event_id", uuid.uuid4())),
        "device_id": kw.pop("device", "dev-1"),
        "seq": kw.pop("seq", 1),
        "type": type_,
        "occurred_at": at(minutes),
        "payload": payload,
        **kw,
    }


def receipt(minutes: float, item: str, qty: str, price: str, **kw: Any) -> dict[str, Any]:
    replayed = kw.pop("replayed", False)
    return event(
        "purchase_receipt",
        minutes,
        {
            "supplier": "SUP",
            "item": item,
            "location": kw.pop("location", "WH"),
            "quantity": qty,
            "unit_price": price,
            **kw,
        },
        replayed=replayed,
    )


def issue(minutes: float, item: str, qty: str, wo: str = "WO1", **kw: Any) -> dict[str, Any]:
    return event(
        "material_issue",
        minutes,
        {
            "work_order": wo,
            "item": item,
            "location": kw.pop("location", "WH"),
            "quantity": qty,
            **kw,
        },
    )


def ret(minutes: float, item: str, qty: str, wo: str = "WO1") -> dict[str, Any]:
    return event(
        "material_return",
        minutes,
        {"work_order": wo, "item": item, "location": "WH", "quantity": qty},
    )


def labour(minutes: float, hours: str, wo: str = "WO1") -> dict[str, Any]:
    return event("labour", minutes, {"work_order": wo, "work_center": "WC", "hours": hours})


def completion(minutes: float, qty: str, wo: str = "WO1") -> dict[str, Any]:
    return event(
        "production_completion", minutes, {"work_order": wo, "location": "WH", "quantity": qty}
    )


def shipment(minutes: float, item: str, qty: str, price: str) -> dict[str, Any]:
    return event(
        "sales_shipment",
        minutes,
        {"customer": "CUS", "item": item, "location": "WH", "quantity": qty, "unit_price": price},
    )


def count(minutes: float, item: str, counted: str) -> dict[str, Any]:
    return event(
        "stock_count", minutes, {"item": item, "location": "WH", "counted_quantity": counted}
    )


def reversal(minutes: float, original: str) -> dict[str, Any]:
    return event("reversal", minutes, {"reverses_event_id": original, "reason": "test"})


def setup_workshop(api: Any) -> None:
    """Items RAW (moving average), BOLT (FIFO), GLUE (lot-tracked), TBL (finished);
    supplier SUP, customer CUS, work centre WC (labour 40/h, overhead 10/h), WO1/WO2."""
    for body in [
        {"code": "RAW", "name": "Board", "kind": "raw"},
        {"code": "BOLT", "name": "Bolt", "kind": "raw", "valuation_method": "fifo"},
        {"code": "GLUE", "name": "Glue", "kind": "raw", "lot_tracked": True},
        {"code": "TBL", "name": "Table", "kind": "finished"},
    ]:
        api.create("/items", body)
    api.create("/suppliers", {"code": "SUP", "name": "Supplier"})
    api.create("/customers", {"code": "CUS", "name": "Customer"})
    api.create(
        "/work-centers",
        {"code": "WC", "name": "Assembly", "labour_rate": "40", "overhead_rate": "10"},
    )
    api.create(
        "/work-orders", {"code": "WO1", "item": "TBL", "planned_quantity": "10", "release": True}
    )
    api.create(
        "/work-orders", {"code": "WO2", "item": "TBL", "planned_quantity": "5", "release": True}
    )
