"""edge event waits_on: a held event keeps what would clear it (item:<code>,
work_order:<code>, event:<id>, period:<YYYY-MM>...), indexed, so the held events a
receipt or a release may clear are found by one query instead of reading and decoding
every held row (services/held.py, services/waits_on.py). Held rows from before get it
from their payload.

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-07 17:40:00
"""

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

from cloud_api.db.migrate import drop_columns

revision: str = "0030"
down_revision: str | None = "0029"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_edge_event_waits_on"
STOCK_CODES = ("insufficient_stock", "reserved_for_other_orders", "backflush_lot_unavailable")
FIELD = {
    "unknown_item": ("item", "item"),
    "unknown_location": ("location", "location"),
    "unknown_work_center": ("work_center", "work_center"),
    "unknown_work_order": ("work_order", "work_order"),
    "work_order_not_released": ("work_order", "work_order"),
    "event_not_posted": ("event", "reverses_event_id"),
}


def upgrade() -> None:
    with op.batch_alter_table("edge_event") as batch:
        batch.add_column(
            sa.Column("waits_on", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True)
        )
        batch.create_index(INDEX, ["tenant_id", "status", "waits_on", "occurred_at"], unique=False)
    _backfill()


def _key(code: str, raw: dict, occurred_at: Any, timezone: str) -> str | None:
    """As services/waits_on.py wait_key when this revision was written (frozen here)."""
    payload = raw.get("payload") or {}
    if code in STOCK_CODES:
        if raw.get("type") == "production_completion":
            return "*"
        return f"item:{payload.get('item')}"
    if code in FIELD:
        prefix, name = FIELD[code]
        return f"{prefix}:{payload.get(name)}"
    if code == "period_locked":
        if not isinstance(occurred_at, datetime):  # SQLite's text, untyped here
            occurred_at = datetime.fromisoformat(str(occurred_at))
        moment = occurred_at if occurred_at.tzinfo else occurred_at.replace(tzinfo=UTC)
        day = moment.astimezone(ZoneInfo(timezone)).date()
        return f"period:{day.year:04d}-{day.month:02d}"
    return None


def _backfill() -> None:
    """Held rows from before: their key from their payload. On PostgreSQL the forced
    row-level security is lifted for the statement (as 0023), in this transaction."""
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    if postgres:
        for table in ("edge_event", "tenant"):
            op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    ev = sa.table(
        "edge_event",
        sa.column("tenant_id"),
        sa.column("event_id"),
        sa.column("status"),
        sa.column("code"),
        sa.column("payload"),
        sa.column("occurred_at"),
        sa.column("waits_on"),
    )
    tn = sa.table("tenant", sa.column("id"), sa.column("timezone"))
    zones = {r.id: r.timezone for r in bind.execute(sa.select(tn.c.id, tn.c.timezone))}
    rows = bind.execute(
        sa.select(ev.c.tenant_id, ev.c.event_id, ev.c.code, ev.c.payload, ev.c.occurred_at).where(
            ev.c.status == "held"
        )
    ).all()
    updates = []
    for row in rows:
        try:
            raw = json.loads(row.payload)
        except ValueError:
            continue
        zone = zones.get(row.tenant_id) or "Asia/Shanghai"
        key = _key(row.code or "", raw, row.occurred_at, zone)
        if key is not None:
            updates.append({"t": row.tenant_id, "e": row.event_id, "w": key})
    if updates:
        bind.execute(
            sa.update(ev)
            .where(ev.c.tenant_id == sa.bindparam("t"), ev.c.event_id == sa.bindparam("e"))
            .values(waits_on=sa.bindparam("w")),
            updates,
        )
    if postgres:
        for table in ("edge_event", "tenant"):
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")


def downgrade() -> None:
    with op.batch_alter_table("edge_event") as batch:
        batch.drop_index(INDEX)
    drop_columns(op, "edge_event", "waits_on")
