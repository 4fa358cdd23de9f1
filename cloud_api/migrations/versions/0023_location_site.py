"""location site: each warehouse and bin is at a site, so a device enrolled at a site
moves stock at that site's locations only. Existing locations go to "main", or, in a
tenant whose live devices are all enrolled at one other site, to that site (so they
keep posting). A tenant with live devices at several sites keeps "main": its devices
elsewhere post at locations created at their own site.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05 09:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

from cloud_api.db.migrate import drop_columns

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("location") as batch:
        batch.add_column(
            sa.Column(
                "site",
                sqlmodel.sql.sqltypes.AutoString(length=64),
                nullable=False,
                server_default="main",
            )
        )
    _follow_the_devices()


# Row-level security forced on the tables would show the schema owner no rows (a
# superuser sees them anyway): the statement runs with the FORCE lifted, in the same
# transaction.
ONE_SITE = """UPDATE location SET site = d.site
FROM (SELECT tenant_id, MIN(site) AS site FROM device WHERE revoked_at IS NULL
      GROUP BY tenant_id HAVING COUNT(DISTINCT site) = 1) AS d
WHERE location.tenant_id = d.tenant_id AND location.kind IN ('warehouse', 'bin')"""


def _follow_the_devices() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        for table in ("location", "device"):
            op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    op.execute(ONE_SITE)
    if postgres:
        for table in ("location", "device"):
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")


def downgrade() -> None:
    drop_columns(op, "location", "site")
