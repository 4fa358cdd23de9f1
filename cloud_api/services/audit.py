"""The audit log: who did what (a user, a device, the API key, the system), to which
object, when and from where. Append-only: rows are inserted, never changed."""

import uuid
from datetime import datetime

from sqlalchemy import Connection, insert

from cloud_api.db import models as m

T = m.SQLModel.metadata.tables


def audit(
    conn: Connection,
    tenant_id: uuid.UUID,
    now: datetime,
    actor: tuple[str, str],
    action: str,
    obj: str = "",
    ip: str | None = None,
    detail: str = "",
) -> None:
    conn.execute(
        insert(T["audit_log"]).values(
            tenant_id=tenant_id,
            id=uuid.uuid4(),
            at=now,
            actor_kind=actor[0],
            actor_id=actor[1],
            action=action,
            object=obj,
            source_ip=ip,
            detail=detail,
        )
    )
