"""Building bills of materials for tests: a small furniture shop and BOM bodies."""

from typing import Any

import httpx


def setup_furniture(api: Any) -> None:
    """Items TBL (finished), LEG and TOP (semi-finished), BOARD and BOLT (raw), and
    A, B, C (semi-finished, for cycles); work centres ASM (labour 40/h, overhead
    10/h), FIN (30/h, 17/h) and SAW (36/h, 12/h)."""
    for code, kind in [
        ("TBL", "finished"),
        ("LEG", "semi_finished"),
        ("TOP", "semi_finished"),
        ("BOARD", "raw"),
        ("BOLT", "raw"),
        ("A", "semi_finished"),
        ("B", "semi_finished"),
        ("C", "semi_finished"),
    ]:
        api.create("/items", {"code": code, "name": code.title(), "kind": kind})
    for code, labour, overhead in [("ASM", "40", "10"), ("FIN", "30", "17"), ("SAW", "36", "12")]:
        api.create(
            "/work-centers",
            {"code": code, "name": code, "labour_rate": labour, "overhead_rate": overhead},
        )


def line(item: str, quantity: str, scrap: str | None = None) -> dict[str, Any]:
    body = {"item": item, "quantity": quantity}
    if scrap is not None:
        body["scrap_factor"] = scrap
    return body


def operation(
    seq: int, work_center: str, minutes_per_unit: str, setup: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "seq": seq,
        "work_center": work_center,
        "name": f"op {seq}",
        "minutes_per_unit": minutes_per_unit,
    }
    if setup is not None:
        body["setup_minutes"] = setup
    return body


def bom(item: str, *lines: dict[str, Any], activate: bool = True, **kw: Any) -> dict[str, Any]:
    return {"item": item, "lines": list(lines), "activate": activate, **kw}


def post_bom(api: Any, body: dict[str, Any]) -> httpx.Response:
    return api.post("/boms", json=body)  # type: ignore[no-any-return]


def create_bom(api: Any, body: dict[str, Any]) -> dict[str, Any]:
    response = post_bom(api, body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def table_boms(api: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """TBL (per 1): 4 LEG + 6 % scrap, 1 TOP + 2 %, 8 BOLT; routing ASM (15 min
    set-up + 12 min/unit), FIN (4.7 min/unit), ASM (3 min/unit).
    LEG (per 3 legs): 1 BOARD + 7 %, 2 BOLT + 2 %; routing SAW (5 min/unit).
    Both active; answers the two created BOMs."""
    table = create_bom(
        api,
        bom(
            "TBL",
            line("LEG", "4", "0.06"),
            line("TOP", "1", "0.02"),
            line("BOLT", "8"),
            operations=[
                operation(10, "ASM", "12", setup="15"),
                operation(20, "FIN", "4.7"),
                operation(30, "ASM", "3"),
            ],
        ),
    )
    leg = create_bom(
        api,
        bom(
            "LEG",
            line("BOARD", "1", "0.07"),
            line("BOLT", "2", "0.02"),
            output_quantity="3",
            operations=[operation(10, "SAW", "5")],
        ),
    )
    return table, leg


def low_level_codes(api: Any) -> dict[str, int]:
    return {row["code"]: row["low_level_code"] for row in api.get("/items").json()}
