"""Subscription billing, pure: what a period costs, when an invoice is due, and the
payment-provider port with its manual / bank-transfer adapter.

Prices are monthly, in CNY, before VAT; an enterprise price is agreed per contract
(None: the operator enters it on the invoice). An invoice for the next period is
issued `ISSUE_BEFORE` ahead of the period's (or trial's) end and is due at that end;
a renewal invoice still open at its due date is a failed renewal (past_due).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

MONTHLY_PRICE_CNY: dict[str, Decimal | None] = {
    "trial": Decimal("0"),
    "starter": Decimal("299.00"),
    "pro": Decimal("999.00"),
    "enterprise": None,
}
ISSUE_BEFORE = timedelta(days=7)
VAT_RATE = Decimal("0.06")  # software services, general VAT payer


@dataclass(frozen=True)
class InvoiceDraft:
    plan_code: str
    period_start: datetime
    period_end: datetime
    net: Decimal
    vat: Decimal
    due_at: datetime

    @property
    def total(self) -> Decimal:
        return self.net + self.vat


def next_invoice(
    plan_code: str, ends_at: datetime | None, now: datetime, period_days: int = 30
) -> InvoiceDraft | None:
    """The invoice for the period after `ends_at` (a trial's or a paid period's end),
    once `now` is within ISSUE_BEFORE of it; None before, or for a custom price."""
    price = MONTHLY_PRICE_CNY.get(plan_code)
    if ends_at is None or price is None or now < ends_at - ISSUE_BEFORE:
        return None
    vat = (price * VAT_RATE).quantize(Decimal("0.01"))
    return InvoiceDraft(
        plan_code, ends_at, ends_at + timedelta(days=period_days), price, vat, ends_at
    )


@dataclass(frozen=True)
class PaymentResult:
    paid: bool
    reference: str
    message: str


class PaymentProvider(Protocol):
    """The port: ask for an invoice to be paid; confirm what was received."""

    def request_payment(self, invoice_number: str, total: Decimal) -> PaymentResult: ...

    def confirm(self, invoice_number: str, total: Decimal, reference: str) -> PaymentResult: ...


class ManualBankTransfer:
    """The adapter for bank transfers: the customer pays to the account on the invoice,
    quoting its number; an operator records the transfer with its bank reference and
    the amount received, which must be the invoice's total."""

    def request_payment(self, invoice_number: str, total: Decimal) -> PaymentResult:
        return PaymentResult(
            False, "", f"transfer {total} CNY quoting {invoice_number}; it is recorded by hand"
        )

    def confirm(self, invoice_number: str, total: Decimal, reference: str) -> PaymentResult:
        if not reference.strip():
            return PaymentResult(False, "", "a bank reference is required")
        return PaymentResult(True, reference.strip(), f"{invoice_number} paid by transfer")
