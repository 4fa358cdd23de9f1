"""The audit log: who did what (a user, a device, the API key, the system), to which
object, when and from where. Append-only: rows are inserted, never changed."""

import uuid
from datetime import datetime

from sqlalchemy import Connection, Engine, insert

from cloud_api.db import models as m
from cloud_api.domain.clock import now_utc

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


def record_probe(
    db: Engine,
    tenant_id: uuid.UUID,
    actor: tuple[str, str],
    kind: str,
    ref: str,
    ip: str | None,
    request_line: str,
) -> None:
    """An id (not a code: what uuid.UUID reads, as the lookup does) this tenant does not
    have, asked for: a security event in its own audit log (who, what, from where),
    kept in its own transaction though the request fails."""
    try:
        uuid.UUID(ref)
    except ValueError:
        return
    with db.begin() as conn:
        what = f"{kind}:{ref}"
        audit(conn, tenant_id, now_utc(), actor, "security.unknown_object", what, ip, request_line)
