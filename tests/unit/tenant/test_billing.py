"""Subscription billing rules (tenant/billing.py), unit level."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tenant.billing import ISSUE_BEFORE, ManualBankTransfer, next_invoice

END = datetime(2026, 12, 31, 8, 0, tzinfo=UTC)


def test_the_next_invoice_comes_a_week_ahead_and_is_due_at_the_end() -> None:
    assert next_invoice("pro", END, END - ISSUE_BEFORE - timedelta(seconds=1)) is None
    draft = next_invoice("pro", END, END - ISSUE_BEFORE)
    assert draft is not None
    assert (draft.net, draft.vat, draft.total) == (
        Decimal("999.00"),
        Decimal("59.94"),
        Decimal("1058.94"),
    )
    assert (draft.period_start, draft.period_end, draft.due_at) == (
        END,
        END + timedelta(days=30),
        END,
    )


def test_no_invoice_without_a_price_or_an_end() -> None:
    assert next_invoice("enterprise", END, END) is None  # agreed per contract
    assert next_invoice("pro", None, END) is None


def test_a_transfer_needs_its_bank_reference() -> None:
    bank = ManualBankTransfer()
    assert not bank.request_payment("INV-1", Decimal("1")).paid
    assert not bank.confirm("INV-1", Decimal("1"), "  ").paid
    confirmed = bank.confirm("INV-1", Decimal("1"), " BOC-1 ")
    assert confirmed.paid and confirmed.reference == "BOC-1"
