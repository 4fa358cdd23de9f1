"""Workstation sessions: the small state machine behind each scanner or handheld.

Pure: a session is fed scans (and the time) and answers at once, with an `Answer` for
the operator (good/bad beep and a short text) and, when a transaction is confirmed, a
`Draft` of the event to capture. The agent commits the draft to the outbox *before* it
gives the answer; if the commit fails it calls `undo()` and answers the error, so the
operator can confirm again.

Scans are read in the light of the step: at the work-order step a scan is looked up as a
work order, at the item step as an item (or a GS1 label), at a quantity step as a
number, but never a product code: a GTIN, a GS1 label or an EAN/UPC scan is refused
there (`quantity_scan`; a GS1 count barcode, AI 30/37 alone, does give a quantity).
A scan the GS1 reading refused (a wrong check digit ...) is answered with its code,
unless it is exactly a code the master data know (a numeric badge on a scanner
without AIM identifiers).

Command barcodes (printed on the workstation's card) start with `#`:
`#ISSUE #COMPLETE #LABOUR #RECEIVE #SHIP` choose the transaction, `#OK` confirms (or skips an
optional step), `#CANCEL` drops the transaction, `#BOM` takes the order's planned
quantity of the component, `#START` / `#STOP` time labour, `#LOGOUT`. A badge scanned
at any step starts over for that operator.

The state is all in `SessionState`; `on_change` is told after every change, so the
agent can keep it across a restart (`session_store`), and `resume()` takes a saved
state up again with the idle timeout applied.

Transactions (EDGE.md / the edge issue):
- issue:    work order → item (or GS1 label) → lot (lot-tracked items) → quantity → #OK
- complete: work order → good quantity → scrap quantity or #OK → #OK
- labour:   work order → #START … #STOP, or hours → #OK
- receive:  location → GS1 label (GTIN, lot, expiry, quantity, PO) or item → lot →
            quantity → #OK
- ship:     customer (and `DN:` delivery note) → item (or GS1 label) → lot →
            quantity → #OK, at the item's list price, from the station's warehouse
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from edge_agent.masterdata import MasterData
from edge_agent.quantity_scan import Refusal, quantity_text

MODES = ("issue", "complete", "labour", "receive", "ship")
MAX_QUANTITY = Decimal("999999999")
# what a keyed or scanned quantity may look like: ASCII digits and a decimal point, as
# the wire contract takes them (no exponent, sign, spaces or other scripts' digits)
PLAIN_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?", re.ASCII)  # "-2": "not a valid quantity"
_PROMPTS = {
    "badge": "scan your badge",
    "work_order": "scan the work order",
    "item": "scan the item or its label",
    "lot": "scan the lot",
    "quantity": "enter the quantity",
    "good": "enter the good quantity",
    "scrap": "enter the scrap quantity or #OK",
    "labour": "#START, #STOP or enter hours",
    "location": "scan the location",
    "customer": "scan the customer",
    "confirm": "#OK to confirm, #CANCEL to drop",
}


@dataclass(frozen=True)
class Answer:
    ok: bool
    text: str


@dataclass(frozen=True)
class Draft:
    """An event ready to capture: its type, payload (quantities as decimal strings),
    operator and when it happened."""

    type: str
    payload: dict[str, Any]
    operator: str
    occurred_at: datetime


@dataclass(frozen=True)
class Outcome:
    answer: Answer
    draft: Draft | None = None


class Gs1Data(Protocol):
    """What the session reads of a GS1 scan (a frozen `ScanData` in the agent)."""

    @property
    def gtin(self) -> str | None: ...
    @property
    def lot(self) -> str | None: ...
    @property
    def expiry(self) -> Any: ...
    @property
    def quantity(self) -> Decimal | None: ...
    @property
    def purchase_order(self) -> str | None: ...


@dataclass(frozen=True)
class ScanProblem:
    """Why the GS1 reading refused a scan: a stable code (``gs1_check_digit`` ...)."""

    code: str
    message: str


@dataclass(frozen=True)
class ScanInput:
    """One scan: its text (without AIM identifier), its GS1 content when it has some,
    its AIM identifier (None: the scanner sent none, or the text was keyed) and the
    GS1 reading's refusal, if any."""

    text: str
    gs1: Gs1Data | None = None
    symbology: str | None = None
    problem: ScanProblem | None = None


@dataclass(frozen=True)
class Workstation:
    id: str
    warehouse: str
    work_center: str | None = None
    supplier: str | None = None  # for receipts on this handheld
    mode: str = "issue"  # the transaction a fresh session starts in
    step_timeout_s: float = 120.0


@dataclass
class SessionState:
    operator: str | None = None
    mode: str = "issue"
    step: str = "badge"
    data: dict[str, Any] = field(default_factory=dict)
    last_activity: datetime | None = None
    # open labour: (operator, work order) → start time (ISO), kept across restarts
    labour: dict[str, str] = field(default_factory=dict)


class Session:
    def __init__(self, station: Workstation, md: MasterData) -> None:
        self.station = station
        self.md = md
        self.state = SessionState(mode=station.mode)
        self._before: SessionState | None = None
        # told after every change of `state` (the agent saves it: session_store)
        self.on_change: Callable[[Session], None] | None = None

    # -- entry points ----------------------------------------------------------
    def feed(self, scan: ScanInput, now: datetime) -> Outcome:
        self._before = copy.deepcopy(self.state)
        outcome = self._feed(scan, now)
        self._changed()
        return outcome

    def _feed(self, scan: ScanInput, now: datetime) -> Outcome:
        if self._timed_out(now):  # a half-done transaction left too long is dropped
            self._restart()
        self.state.last_activity = now
        text = scan.text.strip()
        if not text:
            return self._bad("empty scan")
        if self.md.operator(text) is not None:
            return self._login(text)
        if scan.problem is not None and not self._known_code(text):
            return self._bad(f"{scan.problem.code}: {scan.problem.message}; {self._prompt()}")
        if self.state.operator is None:
            return self._bad("scan your badge first")
        if text.startswith("#"):
            return self._command(text.upper(), now)
        handler = getattr(self, f"_{self.state.mode}_{self.state.step}", None)
        if handler is None:
            return self._bad(f"scan {self._prompt()}")
        outcome: Outcome = handler(text, scan, now)
        return outcome

    def tick(self, now: datetime) -> Answer | None:
        """Drop a transaction left half-done for longer than the step timeout."""
        if self._timed_out(now):
            self._restart()
            self._changed()
            return Answer(False, f"timed out; {self._prompt()}")
        return None

    def undo(self) -> None:
        """The last feed's draft could not be committed: back to where it was."""
        if self._before is not None:
            self.state = self._before
            self._before = None
            self._changed()

    def resume(self, state: SessionState, now: datetime) -> bool:
        """Take up a state saved before a restart. A transaction that timed out while
        the agent was down is dropped as `tick` would have dropped it (the badge and
        the transaction type stay, as they do then); True when it was."""
        if state.step not in _PROMPTS or state.mode not in MODES:
            raise ValueError(f"not a session state: mode {state.mode!r}, step {state.step!r}")
        self.state = state
        self._before = None
        timed_out = self._timed_out(now)
        if timed_out:
            self._restart()
        self._changed()
        return timed_out

    def open_labour(self) -> dict[str, str]:
        return dict(self.state.labour)

    def restore_labour(self, labour: dict[str, str]) -> None:
        self.state.labour = dict(labour)

    # -- common ----------------------------------------------------------------
    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self)

    def _known_code(self, text: str) -> bool:
        md = self.md
        lookups = (md.work_order, md.item, md.location, md.customer)
        return any(lookup(text) is not None for lookup in lookups)

    def _timed_out(self, now: datetime) -> bool:
        last = self.state.last_activity
        busy = bool(self.state.data)
        limit = timedelta(seconds=self.station.step_timeout_s)
        return busy and last is not None and now - last > limit

    def _first_step(self) -> str:
        return {"receive": "location", "ship": "customer"}.get(self.state.mode, "work_order")

    def _restart(self, keep: tuple[str, ...] = ()) -> None:
        self.state.data = {k: v for k, v in self.state.data.items() if k in keep}
        self.state.step = self._first_step() if self.state.operator else "badge"

    def _login(self, badge: str) -> Outcome:
        self.state.operator = badge
        self._restart()
        name = self.md.operator(badge) or {}
        return self._ok(f"hello {name.get('name', badge)}: {self.state.mode}, {self._prompt()}")

    def _command(self, command: str, now: datetime) -> Outcome:
        mode = command[1:].lower()
        if mode in MODES:
            self.state.mode = mode
            self._restart()
            return self._ok(f"{mode}: {self._prompt()}")
        if command == "#CANCEL":
            self._restart()
            return self._ok(f"cancelled; {self._prompt()}")
        if command == "#LOGOUT":
            self.state.operator = None
            self._restart()
            return self._ok("logged out; scan your badge")
        handler = getattr(self, f"_{self.state.mode}_{self.state.step}_command", None)
        if handler is None:
            return self._not_here(command)
        result: Outcome = handler(command, now)
        return result

    def _prompt(self) -> str:
        return _PROMPTS[self.state.step]

    def _ok(self, text: str, draft: Draft | None = None) -> Outcome:
        return Outcome(Answer(True, text), draft)

    def _not_here(self, command: str) -> Outcome:
        return self._bad(f"{command} does not apply here; {self._prompt()}")

    def _bad(self, text: str) -> Outcome:
        return Outcome(Answer(False, text))

    def _goto(self, step: str, said: str) -> Outcome:
        self.state.step = step
        return self._ok(f"{said}; {self._prompt()}")

    def _work_order(self, code: str) -> Outcome | None:
        order = self.md.work_order(code)
        if order is None:
            return self._bad(f"work order {code} is unknown or not open")
        self.state.data["work_order"] = order.code
        return None

    def _quantity(
        self, text: str, scan: ScanInput, allow_zero: bool = False, counts: bool = True
    ) -> Decimal | Outcome:
        read = quantity_text(text, scan.gs1, scan.symbology, counts=counts)
        if isinstance(read, Refusal):
            return self._bad(f"{read.code}: {read.why}; {self._prompt()}")
        text = read.text
        plain = text.removeprefix("Q:").replace(",", ".")
        if not PLAIN_NUMBER.fullmatch(plain):  # the contract takes no 5e2, +5 or 1_000
            return self._bad(f"{text} is not a quantity; {self._prompt()}")
        try:
            value = Decimal(plain)
        except InvalidOperation:
            return self._bad(f"{text} is not a quantity; {self._prompt()}")
        if not value.is_finite() or value < 0 or (value == 0 and not allow_zero):
            return self._bad(f"{text} is not a valid quantity; {self._prompt()}")
        if value > MAX_QUANTITY or value != value.quantize(Decimal("0.000001")):
            return self._bad(f"{text}: at most 6 decimal places and {MAX_QUANTITY}")
        return value

    def _draft(self, type_: str, payload: dict[str, Any], now: datetime) -> Draft:
        operator = self.state.operator or ""
        return Draft(type_, payload, operator, now)

    def _item_from(self, text: str, scan: ScanInput) -> dict[str, Any] | Outcome:
        """An item from its code or from a GS1 label's GTIN (lot, expiry, quantity and
        PO of the label are kept for the next steps)."""
        if scan.gs1 is not None and scan.gs1.gtin:
            item = self.md.item_by_gtin(scan.gs1.gtin)
            if item is None:
                return self._bad(f"no item has GTIN {scan.gs1.gtin}")
            for key in ("lot", "expiry", "quantity", "purchase_order"):
                value = getattr(scan.gs1, key, None)
                if value:
                    self.state.data[key] = value
            return item
        item = self.md.item(text)
        if item is None:
            return self._bad(f"item {text} is unknown")
        return item

    def _after_item(self) -> Outcome:
        item = self.md.item(self.state.data["item"]) or {}
        if item.get("lot_tracked") and not self.state.data.get("lot"):
            return self._goto("lot", f"{item['code']}")
        if self.state.data.get("quantity"):
            return self._goto("confirm", self._summary())
        return self._goto("quantity", f"{item.get('code')} {item.get('name', '')}".strip())

    def _summary(self) -> str:
        d = self.state.data
        lot = f" lot {d['lot']}" if d.get("lot") else ""
        return f"{d.get('quantity')} {d.get('item')}{lot}"

    # -- issue -----------------------------------------------------------------
    def _issue_work_order(self, text: str, scan: ScanInput, now: datetime) -> Outcome:
        return self._work_order(text) or self._goto("item", f"work order {text}")

    def _issue_item(self, text: str, scan: ScanInput, now: datetime) -> Outcome:
        item = self._item_from(text, scan)
        if isinstance(item, Outcome):
            return item
        order = self.md.work_order(self.state.data["work_order"])
        component = order.component(item["code"]) if order else None
        method = component.issue_method if component else item.get("issue_method")
        if method == "backflush":
            self._restart(keep=("work_order",))
            self.state.step = "item"
            return self._bad(f"{item['code']} is backflushed on completion; do not scan it")
        self.state.data["item"] = item["code"]
        return self._after_item()

    def _issue_lot(self, text: str, scan: ScanInput, now: datetime) -> Outcome:
        self.state.data["lot"] = text.removeprefix("LOT:")
        return self._after_item()

    def _issue_quantity(self, text: str, scan: ScanInput, now: datetime) -> Outcome:
        value = self._quantity(text, scan)
        if isinstance(value, Outcome):
            return value
        self.state.data["quantity"] = value
        return self._goto("confirm", self._summary())

    def _issue_quantity_command(self, command: str, now: datetime) -> Outcome:
        if command != "#BOM":
            return self._not_here(command)
        order = self.md.work_order(self.state.data["work_order"])
        component = order.component(self.state.data["item"]) if order else None
        if component is None:
            return self._bad("the item is not on the order's bill; enter the quantity")
        self.state.data["quantity"] = component.planned_quantity
        return self._goto("confirm", self._summary())

    def _issue_confirm_command(self, command: str, now: datetime) -> Outcome:
        if command != "#OK":
            return self._not_here(command)
        d = self.state.data
        order = self.md.work_order(d["work_order"])
        component = order.component(d["item"]) if order else None
        location = (
            component.location if component else (order and order.warehouse)
        ) or self.station.warehouse
        payload = {
            "work_order": d["work_order"],
            "item": d["item"],
            "location": location,
            "quantity": str(d["quantity"]),
            "lot": d.get("lot") or "",
        }
        said = f"issued {self._summary()} to {d['work_order']}"
        self._restart(keep=("work_order",))
        self.state.step = "item"
        return self._ok(f"{said}; next item", self._draft("material_issue", payload, now))

    # -- complete --------------------------------------------------------------
    def _complete_work_order(self, text: str, scan: ScanInput, now: datetime) -> Outcome:
        return self._work_order(text) or self._goto("good", f"work order {text}")

    def _complete_good(self, text: str, scan: ScanInput, now: datetime) -> Outcome:
        value = self._quantity(text, scan)
        if isinstance(value, Outcome):
            return value
        self.state.data["good"] = value
        return self._goto("scrap", f"good {value}")

    def _complete_scrap(self, text: str, scan: ScanInput, now: datetime) -> Outcome:
        value = self._quantity(text, scan, allow_zero=True)
        if isinstance(value, Outcome):
            return value
        self.state.data["scrap"] = value
        return self._goto("confirm", self._completion_summary())

    def _complete_scrap_command(self, command: str, now: datetime) -> Outcome:
        if command != "#OK":
            return self._not_here(command)
        self.state.data["scrap"] = Decimal(0)
        return self._goto("confirm", self._completion_summary())

    def _completion_summary(self) -> str:
        d = self.state.data
        return f"{d['work_order']}: good {d['good']}, scrap {d['scrap']}"

    def _complete_confirm_command(self, command: str, now: datetime) -> Outcome:
        if command != "#OK":
            return self._not_here(command)
        d = self.state.data
        order = self.md.work_order(d["work_order"])
        payload = {
            "work_order": d["work_order"],
            "location": self.station.warehouse or (order and order.warehouse),
            "quantity": str(d["good"]),
            "scrap_quantity": str(d["scrap"]),
        }
        said = f"completed {self._completion_summary()}"
        self._restart()
        return self._ok(said, self._draft("production_completion", payload, now))

    # -- labour ----------------------------------------------------------------
    def _labour_work_order(self, text: str, scan: ScanInput, now: datetime) -> Outcome:
        if not self.station.work_center:
            return self._bad(f"workstation {self.station.id} has no work centre for labour")
        return self._work_order(text) or self._goto("labour", f"work order {text}")

    def _labour_key(self) -> str:
        return f"{self.state.operator}|{self.state.data['work_order']}"

    def _labour_labour(self, text: str, scan: ScanInput, now: datetime) -> Outcome:
        value = self._quantity(text, scan, counts=False)
        if isinstance(value, Outcome):
            return value
        self.state.data["hours"] = value
        return self._goto("confirm", f"{value} h on {self.state.data['work_order']}")

    def _labour_labour_command(self, command: str, now: datetime) -> Outcome:
        key = self._labour_key()
        if command == "#START":
            if key in self.state.labour:
                return self._bad(f"already started at {self.state.labour[key][11:16]}")
            self.state.labour[key] = now.isoformat()
            self._restart()
            return self._ok(f"started at {now:%H:%M}")
        if command != "#STOP":
            return self._not_here(command)
        started = self.state.labour.pop(key, None)
        if started is None:
            return self._bad("not started: #START first, or enter hours")
        payload = self._labour_payload(started_at=started, stopped_at=now.isoformat())
        self._restart()
        return self._ok(f"stopped at {now:%H:%M}", self._draft("labour", payload, now))

    def _labour_confirm_command(self, command: str, now: datetime) -> Outcome:
        if command != "#OK":
            return self._not_here(command)
        payload = self._labour_payload(hours=str(self.state.data["hours"]))
        said = f"booked {self.state.data['hours']} h"
        self._restart()
        return self._ok(said, self._draft("labour", payload, now))

    def _labour_payload(self, **times: str) -> dict[str, Any]:
        order = self.state.data["work_order"]
        return {"work_order": order, "work_center": self.station.work_center, **times}

    # -- receive ---------------------------------------------------------------
    def _receive_location(self, text: str, scan: ScanInput, now: datetime) -> Outcome:
        if self.md.location(text) is None:
            return self._bad(f"location {text} is unknown")
        self.state.data["location"] = text
        return self._goto("item", f"into {text}")

    def _receive_item(self, text: str, scan: ScanInput, now: datetime) -> Outcome:
        if text.startswith("PO:"):
            self.state.data["purchase_order"] = text[3:]
            return self._ok(f"PO {text[3:]}; {self._prompt()}")
        item = self._item_from(text, scan)
        if isinstance(item, Outcome):
            return item
        if item.get("purchase_price") is None:
            return self._bad(f"{item['code']} has no purchase price; receive it in the portal")
        self.state.data["item"] = item["code"]
        return self._after_item()

    _receive_lot = _issue_lot
    _receive_quantity = _issue_quantity

    def _receive_confirm_command(self, command: str, now: datetime) -> Outcome:
        if command != "#OK":
            return self._not_here(command)
        if not self.station.supplier:
            return self._bad(f"workstation {self.station.id} has no supplier for receipts")
        d = self.state.data
        item = self.md.item(d["item"]) or {}
        payload: dict[str, Any] = {
            "supplier": self.station.supplier,
            "item": d["item"],
            "location": d["location"],
            "quantity": str(d["quantity"]),
            "unit_price": str(item.get("purchase_price")),
            "lot": d.get("lot") or "",
        }
        if d.get("purchase_order"):
            payload["purchase_order"] = d["purchase_order"]
        if d.get("expiry"):
            payload["expiry"] = d["expiry"].isoformat()
        said = f"received {self._summary()} into {d['location']}"
        self._restart(keep=("location",))
        self.state.step = "item"
        return self._ok(f"{said}; next label", self._draft("purchase_receipt", payload, now))

    # -- ship ------------------------------------------------------------------
    def _ship_customer(self, text: str, scan: ScanInput, now: datetime) -> Outcome:
        if self.md.customer(text) is None:
            return self._bad(f"customer {text} is unknown")
        self.state.data["customer"] = text
        return self._goto("item", f"to {text}")

    def _ship_item(self, text: str, scan: ScanInput, now: datetime) -> Outcome:
        if text.startswith("DN:"):
            self.state.data["delivery_note"] = text[3:]
            return self._ok(f"delivery note {text[3:]}; {self._prompt()}")
        item = self._item_from(text, scan)
        if isinstance(item, Outcome):
            return item
        if item.get("sale_price") is None:
            return self._bad(f"{item['code']} has no list price; ship it from the portal")
        self.state.data["item"] = item["code"]
        return self._after_item()

    _ship_lot = _issue_lot
    _ship_quantity = _issue_quantity

    def _ship_confirm_command(self, command: str, now: datetime) -> Outcome:
        if command != "#OK":
            return self._not_here(command)
        d = self.state.data
        item = self.md.item(d["item"]) or {}
        payload: dict[str, Any] = {
            "customer": d["customer"],
            "item": d["item"],
            "location": self.station.warehouse,
            "quantity": str(d["quantity"]),
            "unit_price": str(item.get("sale_price")),
            "lot": d.get("lot") or "",
        }
        if d.get("delivery_note"):
            payload["delivery_note"] = d["delivery_note"]
        said = f"shipped {self._summary()} to {d['customer']}"
        self._restart(keep=("customer", "delivery_note"))
        self.state.step = "item"
        return self._ok(f"{said}; next item", self._draft("sales_shipment", payload, now))
