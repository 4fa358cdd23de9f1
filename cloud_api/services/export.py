"""The tenant's data as a zip of CSV files, one per tenant table, and the audit log.

Every table with a `tenant_id` is read with `WHERE tenant_id = :tenant` and nothing
else; the files keep the database's own values (decimal quantities and amounts as
text, times in ISO 8601 UTC). A manifest lists the tables and their row counts.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from cloud_api.db import models as m

T = m.SQLModel.metadata.tables
# Secrets stay out of an export, even hashed.
LEFT_OUT = {
    "device_key": {"secret_hash"},
    "api_token": {"secret_hash"},
    "user_session": {"token_hash"},
}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return f"{value:f}"
    return str(value)


def tenant_zip(conn: Connection, tenant_id: Any) -> bytes:
    manifest: dict[str, int] = {}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for table in m.tenant_tables():
            columns = [c for c in table.c if c.name not in LEFT_OUT.get(table.name, set())]
            rows = conn.execute(
                select(*columns)
                .where(table.c.tenant_id == tenant_id)
                .order_by(*table.primary_key.columns)
            )
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow([c.name for c in columns])
            count = 0
            for row in rows:
                writer.writerow([_text(v) for v in row])
                count += 1
            zf.writestr(f"{table.name}.csv", buffer.getvalue())
            manifest[table.name] = count
        zf.writestr(
            "manifest.json",
            json.dumps({"tenant_id": str(tenant_id), "tables": manifest}, indent=2),
        )
    return out.getvalue()


def audit_rows(conn: Connection, tenant_id: Any, limit: int) -> list[dict[str, Any]]:
    log = T["audit_log"]
    rows = conn.execute(
        select(log).where(log.c.tenant_id == tenant_id).order_by(log.c.at.desc()).limit(limit)
    ).mappings()
    return [{k: v for k, v in row.items() if k != "tenant_id"} for row in rows]
