"""The scanner path into the agent (edge_agent/devices.py `ScannerStation.on_frame`)
with a real agent and outbox, no cloud: issue 15's EAN-8 at the quantity prompt is
refused and nothing is captured; a scan without AIM identifier with a wrong check
digit is answered `gs1_check_digit`, not taken as plain text; a numeric badge and a
real quantity still work."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.agent import Agent
from edge_agent.config import parse_config
from edge_agent.devices import ScannerStation
from firmware_bridges.scanner import ScanFrame
from tests.edge_harness import edge_config
from tests.unit.edge.test_sessions import MASTER_DATA


@pytest.fixture
def station(tmp_path: Path) -> Iterator[ScannerStation]:
    raw = edge_config(tmp_path, "http://127.0.0.1:9", "unused")
    raw["workstations"][0]["scanner"] = {"port": "loop://"}  # never opened here
    agent = Agent(parse_config(raw))
    agent.cache.apply(MASTER_DATA)
    scanner = ScannerStation(agent, agent.config.station("ws-1"))
    yield scanner
    agent.stop()


def scan(station: ScannerStation, data: str, symbology: str | None = None) -> tuple[bool, str]:
    body = data.encode("latin-1")
    answer = station.on_frame(ScanFrame(symbology, body, (symbology or "").encode() + body))
    return answer.ok, answer.text or ""


def captured(station: ScannerStation) -> list[dict[str, object]]:
    return [dict(e.payload) for e in station.agent.outbox.next_batch(100)]


@pytest.mark.parametrize(
    ("data", "symbology", "code"),
    [
        ("96385074", None, "not_a_quantity"),  # the issue: 96,385,074 units drafted
        ("96385075", None, "gs1_check_digit"),  # was plain text, then a quantity
        ("96385074", "]E4", "not_a_quantity"),
        ("5901234123457", "]E0", "not_a_quantity"),
        ("0105901234123457", "]C1", "not_a_quantity"),
        ("05901234123457", "]I1", "not_a_quantity"),
    ],
)
def test_a_product_code_at_the_quantity_prompt_is_refused_and_nothing_captured(
    station: ScannerStation, data: str, symbology: str | None, code: str
) -> None:
    for text in ("B-1", "WO1", "RAW"):
        assert scan(station, text, "]C0")[0], text
    ok, text = scan(station, data, symbology)
    assert not ok and text.startswith(f"{code}: "), text
    assert not scan(station, "#OK", "]C0")[0]  # nothing to confirm
    assert captured(station) == []
    assert scan(station, "7")[0] and scan(station, "#OK")[0]  # keyed, then confirmed
    (payload,) = captured(station)
    assert payload["quantity"] == "7"


def test_a_wrong_check_digit_without_identifier_is_refused_at_any_step(
    station: ScannerStation,
) -> None:
    assert scan(station, "20250012")[0]  # a numeric badge the master data know
    ok, text = scan(station, "96385075")
    assert not ok and text.startswith("gs1_check_digit: ")
    assert station.agent.sessions["ws-1"].state.step == "work_order"
