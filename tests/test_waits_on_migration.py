"""Revision 0030 (edge_event.waits_on): held events from before it get what they wait
for from their payload, so a receipt or a release after the upgrade still finds them
(services/held.py reads only the index); going back to 0029 works. On a database of
its own, SQLite and PostgreSQL (as the schema owner, under FORCEd row-level security,
as in production: tests/test_invitation_migration.py's fixture)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from sqlalchemy import insert, select

from cloud_api.db import models as m
from cloud_api.db import tenancy
from cloud_api.db.migrate import downgrade, upgrade
from cloud_api.services.tenants import create_tenant
from tests.test_invitation_migration import PEPPER, _superuser, fresh_url  # noqa: F401

EV = m.SQLModel.metadata.tables["edge_event"]


def _old_event(
    tenant_id: uuid.UUID, kind: str, at: datetime, payload: dict, status: str, code: str | None
) -> dict:
    event_id = uuid.uuid4()
    raw = {"event_id": str(event_id), "type": kind, "occurred_at": at.isoformat()}
    return {
        "tenant_id": tenant_id,
        "event_id": event_id,
        "device_id": "dev-1",
        "seq": 1,
        "type": kind,
        "occurred_at": at,
        "replayed": False,
        "payload": json.dumps({**raw, "payload": payload}),
        "payload_sha256": "0" * 64,
        "status": status,
        "code": code,
        "attempts": 1,
        "received_at": at,
    }


def test_held_events_from_before_get_what_they_wait_for(fresh_url: str) -> None:  # noqa: F811
    db = _superuser(fresh_url)
    try:
        tenant = create_tenant(db, "t-held", "Held & Co", PEPPER)  # Asia/Shanghai
        downgrade(fresh_url, "0029")
        march = datetime(2026, 3, 2, 8, tzinfo=UTC)
        late = datetime(2026, 3, 31, 20, tzinfo=UTC)  # April 1st in Shanghai
        original = uuid.uuid4()
        rows = [
            _old_event(
                tenant.id, "material_issue", march, {"item": "BOLT"}, "held", "insufficient_stock"
            ),
            _old_event(
                tenant.id,
                "production_completion",
                march,
                {"work_order": "WO1"},
                "held",
                "insufficient_stock",
            ),
            _old_event(
                tenant.id, "labour", march, {"work_order": "WO9"}, "held", "work_order_not_released"
            ),
            _old_event(
                tenant.id,
                "reversal",
                march,
                {"reverses_event_id": str(original)},
                "held",
                "event_not_posted",
            ),
            _old_event(
                tenant.id, "purchase_receipt", late, {"item": "RAW"}, "held", "period_locked"
            ),
            _old_event(tenant.id, "purchase_receipt", march, {"item": "RAW"}, "posted", None),
            _old_event(
                tenant.id, "purchase_receipt", march, {"item": "X"}, "held", "quantity_too_large"
            ),
        ]
        with tenancy.as_tenant(tenant.id), db.begin() as conn:
            conn.execute(insert(EV), rows)
        upgrade(fresh_url)
        with tenancy.as_tenant(tenant.id), db.connect() as conn:
            found = dict(
                conn.execute(
                    select(EV.c.event_id, EV.c.waits_on).where(EV.c.tenant_id == tenant.id)
                ).all()
            )
        assert [found[r["event_id"]] for r in rows] == [
            "item:BOLT",
            "*",
            "work_order:WO9",
            f"event:{original}",
            "period:2026-04",
            None,
            None,
        ]
        downgrade(fresh_url, "0029")
        upgrade(fresh_url)
    finally:
        db.dispose()
