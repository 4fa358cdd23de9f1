"""journal day totals: account_day, receivable_day and output_day, kept as entries
post, filled here from the journal lines and completion moves already posted

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-22 07:49:07.213684
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import cloud_api.db.types
from cloud_api.db import rls

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "account_day",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("account_code", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("entry_date", sa.Date(), nullable=False),
        sa.Column("debit", cloud_api.db.types.ScaledDecimal(2), nullable=False),
        sa.Column("credit", cloud_api.db.types.ScaledDecimal(2), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "account_code"],
            ["account.tenant_id", "account.code"],
            name="fk_account_day",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
        ),
        sa.PrimaryKeyConstraint("tenant_id", "account_code", "entry_date"),
    )
    op.create_table(
        "receivable_day",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("entry_date", sa.Date(), nullable=False),
        sa.Column("debit", cloud_api.db.types.ScaledDecimal(2), nullable=False),
        sa.Column("credit", cloud_api.db.types.ScaledDecimal(2), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["customer.tenant_id", "customer.id"],
            name="fk_receivable_day",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
        ),
        sa.PrimaryKeyConstraint("tenant_id", "customer_id", "entry_date"),
    )
    op.create_table(
        "output_day",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("entry_date", sa.Date(), nullable=False),
        sa.Column("quantity", cloud_api.db.types.ScaledDecimal(6), nullable=False),
        sa.Column("value", cloud_api.db.types.ScaledDecimal(2), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
        ),
        sa.PrimaryKeyConstraint("tenant_id", "entry_date"),
    )
    rls.protect_new_table(op, "account_day")
    rls.protect_new_table(op, "receivable_day")
    rls.protect_new_table(op, "output_day")
    _fill_from_lines()


# The lines already posted, added up. Row-level security forced on the ledgers would
# show the schema owner no rows (a superuser sees them anyway): the migration lifts the
# FORCE for its own statements and puts it back in the same transaction.
FILL = [
    """INSERT INTO account_day (tenant_id, account_code, entry_date, debit, credit)
    SELECT l.tenant_id, l.account_code, e.entry_date, SUM(l.debit), SUM(l.credit)
    FROM journal_line l JOIN journal_entry e ON e.tenant_id = l.tenant_id AND e.id = l.entry_id
    GROUP BY l.tenant_id, l.account_code, e.entry_date""",
    """INSERT INTO receivable_day (tenant_id, customer_id, entry_date, debit, credit)
    SELECT l.tenant_id, l.customer_id, e.entry_date, SUM(l.debit), SUM(l.credit)
    FROM journal_line l JOIN journal_entry e ON e.tenant_id = l.tenant_id AND e.id = l.entry_id
    WHERE l.account_code = '1122' AND l.customer_id IS NOT NULL
    GROUP BY l.tenant_id, l.customer_id, e.entry_date""",
    """INSERT INTO output_day (tenant_id, entry_date, quantity, value)
    SELECT e.tenant_id, e.entry_date,
        SUM(CASE WHEN m.mirrors_move_id IS NULL THEN m.quantity ELSE -m.quantity END),
        SUM(CASE WHEN m.mirrors_move_id IS NULL THEN m.value ELSE -m.value END)
    FROM journal_entry e JOIN stock_move m ON m.tenant_id = e.tenant_id AND m.event_id = e.event_id
    WHERE e.kind <> 'revaluation' AND m.kind = 'completion'
    GROUP BY e.tenant_id, e.entry_date""",
]
TABLES = (
    "journal_entry",
    "journal_line",
    "stock_move",
    "account_day",
    "receivable_day",
    "output_day",
)


def _fill_from_lines() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    for statement in FILL:
        op.execute(statement)
    if postgres:
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")


def downgrade() -> None:
    op.drop_table("output_day")
    op.drop_table("receivable_day")
    op.drop_table("account_day")
