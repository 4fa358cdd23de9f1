"""keys distributable by tenant: the credential lookups' unique indexes without
tenant_id become plain indexes (the primary keys keep each credential unique within
its tenant); an invitation's id is unique per tenant; on a database with the citus
extension, the tenant tables are distributed by tenant_id and the global ones made
reference tables (cloud_api/db/distribution.py); elsewhere that step does nothing

Why dropping the cross-tenant uniqueness keeps the behaviour: each of these values is
random and looked up before the tenant is known; no upsert names these indexes as its
arbiter; within a tenant the primary key still refuses a duplicate. Two tenants can
share one only by drawing the same random value: a device key's or API token's key id
(64 bits, and its row's secret is verified, so a repeat could refuse a key, never admit
one), an enrollment code (16 characters of 30, about 78 bits, live 24 h), a session
token or invitation link (256 bits, looked up by its hash), an invitation's uuid4. On
Citus a unique index without the distribution column cannot exist at all.

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-08 10:00:00
"""

from collections.abc import Sequence

from alembic import op

from cloud_api.db import distribution

revision: str = "0032"
down_revision: str | None = "0031"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, the unique index without tenant_id, its columns, the plain index replacing it)
LOOKUPS = (
    ("api_token", "uq_api_token_keyid", ["keyid"], "ix_api_token_keyid"),
    ("device_key", "uq_device_key_keyid", ["keyid"], "ix_device_key_keyid"),
    ("enrollment_code", "uq_enrollment_code_hash", ["code_hash"], "ix_enrollment_code_hash"),
    ("user_session", "uq_user_session_token", ["token_hash"], "ix_user_session_token"),
    ("invitation", "uq_invitation_token_hash", ["token_hash"], "ix_invitation_token_hash"),
)


def upgrade() -> None:
    for table, unique, columns, plain in LOOKUPS:
        op.drop_index(unique, table_name=table)
        op.create_index(plain, table, columns)
    op.drop_index("uq_invitation_id", table_name="invitation")
    op.create_index("uq_invitation_id", "invitation", ["tenant_id", "id"], unique=True)
    distribution.distribute(op.get_bind())


def downgrade() -> None:
    conn = op.get_bind()
    citus = conn.dialect.name == "postgresql" and distribution.citus_installed(conn)
    if citus and distribution.distributed_already(conn):
        raise RuntimeError(
            "below revision 0032 the schema has unique indexes Citus cannot hold:"
            " undistribute the tables first (SELECT undistribute_table(...))"
        )
    op.drop_index("uq_invitation_id", table_name="invitation")
    op.create_index("uq_invitation_id", "invitation", ["id"], unique=True)
    for table, unique, columns, plain in LOOKUPS:
        op.drop_index(plain, table_name=table)
        op.create_index(unique, table, columns, unique=True)
