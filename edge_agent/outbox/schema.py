"""The outbox's SQLite layout and its migrations.

`PRAGMA user_version` holds the schema version. `MIGRATIONS` is ordered; opening a file
applies every step above its version, and sets the new version, in one transaction, so
an upgrade either happens whole or not at all and never touches the events' capture
columns. A new database runs the same steps from 0, so a fresh file and a migrated one
have the same layout. Never edit a released step; add the next one.

Version 1 (first release): events, their result history, sync state.
Version 2: clock offset / synced / raw scan / clock-skew columns, and the `meta`
key-value table for the agent.
Version 3: a partial index of delivered events by `sent_at`, so the agent's periodic
purge (retention.py) finds what it may delete without reading every delivered row.
"""

import sqlite3

from edge_agent.outbox.model import OutboxError

# occurred_at further than this from captured_at flags the row `clock_skew`.
CLOCK_SKEW_THRESHOLD_S = 300.0

V1 = (
    """
    CREATE TABLE event (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL UNIQUE,
        edge_id TEXT NOT NULL,
        device_id TEXT NOT NULL,
        device_seq INTEGER,
        device_msg_id TEXT,
        type TEXT NOT NULL,
        occurred_at TEXT NOT NULL,
        captured_at TEXT NOT NULL,
        operator TEXT,
        payload TEXT NOT NULL,
        payload_sha256 TEXT NOT NULL,
        reverses_event_id TEXT,
        agent_version TEXT NOT NULL,
        captured_offline INTEGER NOT NULL DEFAULT 0 CHECK (captured_offline IN (0, 1)),
        state TEXT NOT NULL DEFAULT 'pending'
            CHECK (state IN ('pending', 'sent', 'held', 'parked')),
        result_code TEXT,
        result_message TEXT,
        result_at TEXT,
        sent_at TEXT
    )
    """,
    "CREATE INDEX event_by_state ON event (state, seq)",
    """
    CREATE TABLE event_history (
        id INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL,
        at TEXT NOT NULL,
        what TEXT NOT NULL,
        code TEXT,
        message TEXT
    )
    """,
    "CREATE INDEX event_history_by_event ON event_history (event_id)",
    """
    CREATE TABLE sync_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        last_sync_at TEXT,
        last_sync_ok INTEGER CHECK (last_sync_ok IN (0, 1)),
        last_sync_ok_at TEXT,
        last_sync_error TEXT
    )
    """,
    "INSERT INTO sync_state (id) VALUES (1)",
)

V2 = (
    "ALTER TABLE event ADD COLUMN clock_offset_s REAL",
    "ALTER TABLE event ADD COLUMN clock_synced INTEGER CHECK (clock_synced IN (0, 1))",
    "ALTER TABLE event ADD COLUMN raw_scan TEXT",
    "ALTER TABLE event ADD COLUMN clock_skew INTEGER NOT NULL DEFAULT 0"
    " CHECK (clock_skew IN (0, 1))",
    # Events captured under v1 get their skew flag from the times they kept.
    "UPDATE event SET clock_skew = 1"
    " WHERE abs(julianday(occurred_at) - julianday(captured_at)) * 86400.0"
    f" > {CLOCK_SKEW_THRESHOLD_S}",
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
)

V3 = ("CREATE INDEX event_sent_at ON event (sent_at) WHERE state = 'sent'",)

MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = ((1, V1), (2, V2), (3, V3))
CURRENT_VERSION = MIGRATIONS[-1][0]


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the file to CURRENT_VERSION in one transaction; return the version it had.

    `conn` must be in autocommit mode (isolation_level=None)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = schema_version(conn)
        if found > CURRENT_VERSION:
            raise OutboxError(
                f"the outbox has schema version {found}, newer than this agent knows "
                f"({CURRENT_VERSION}); run the newer agent version or restore a backup",
                code="outbox_too_new",
            )
        for version, statements in MIGRATIONS:
            if version > found:
                for statement in statements:
                    conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {CURRENT_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return found
