"""Workstation sessions kept across an agent restart (issue 15: after a restart every
handheld had to rescan its badge and the work order).

One row per workstation in SQLite (WAL, ``synchronous=FULL``, as the outbox), written
whenever the session's state changes: the badge, the transaction type and step, what
the transaction has gathered so far (work order, item, lot, quantity, location,
customer ...), the last activity and the open labour. On start the agent resumes each
session from its row; ``Session.resume`` applies the idle timeout, so a transaction
left longer than the step timeout (the agent being down counts) is dropped as it would
have been had the agent kept running; the badge stays, as it does then.

The file is the outbox's with ``.sessions`` before the suffix
(``outbox.sqlite3`` → ``outbox.sessions.sqlite3``): a connection and a table of its own,
so a session write never waits on the outbox's lock or its checkpoints, and the
outbox's schema versions and disk accounting stay its own.

Order against the outbox: a session is saved when `feed` returns, before the agent
commits the draft. A crash in between loses at worst the transaction's input (the
operator heard no beep and scans again), never repeats a confirmed one. Open labour is
also kept by the agent in the outbox's meta after each capture; on resume the two are
merged (this store's start wins for the same key), so neither window loses a start:
a #START has no draft, and a #STOP's draft is committed after this store is written.

Saving is best effort: an error is logged and the scan goes on (the events are what
must never be lost, and they are in the outbox).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from edge_agent.sessions import Session, SessionState

log = logging.getLogger("edge_agent.sessions")

FORMAT = 1
_BUSY_TIMEOUT_S = 5.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS workstation_session (
    station_id TEXT PRIMARY KEY,
    format INTEGER NOT NULL,
    state TEXT NOT NULL,
    saved_at TEXT NOT NULL
)
"""


def session_store_path(outbox_path: Path) -> Path:
    """Where an agent with this outbox keeps its sessions."""
    return outbox_path.with_name(f"{outbox_path.stem}.sessions{outbox_path.suffix}")


class SessionStore:
    """The saved sessions of one agent; safe to call from several threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=_BUSY_TIMEOUT_S
        )
        mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            self._conn.close()
            raise RuntimeError(f"the session store at {path} cannot use WAL mode ({mode!r})")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute(_SCHEMA)
        self._written: dict[str, str] = {}

    # -- agent wiring ----------------------------------------------------------
    def attach(self, sessions: dict[str, Session], now: datetime) -> None:
        """Resume each session from its row, then save it on every change."""
        for station_id, session in sessions.items():
            self.resume(station_id, session, now)
            session.on_change = lambda s, sid=station_id: self.save(sid, s)
            self.save(station_id, session)  # what resume changed (a timeout, labour)

    def resume(self, station_id: str, session: Session, now: datetime) -> bool:
        """Take up the saved state of `station_id`, if any; True when one was found.
        The labour the session already holds (from the outbox meta) is merged in."""
        state = self.load(station_id)
        if state is None:
            return False
        state.labour = {**session.state.labour, **state.labour}
        try:
            timed_out = session.resume(state, now)
        except ValueError as error:  # a station whose config changed shape: start fresh
            log.warning("session %s not resumed: %s", station_id, error)
            return False
        log.info("session %s resumed%s", station_id, " (timed out)" if timed_out else "")
        return True

    # -- rows ------------------------------------------------------------------
    def load(self, station_id: str) -> SessionState | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT format, state FROM workstation_session WHERE station_id = ?",
                (station_id,),
            ).fetchone()
        if row is None:
            return None
        if row[0] != FORMAT:
            log.warning("session %s saved in format %s; starting fresh", station_id, row[0])
            return None
        try:
            state = state_from_json(row[1])
        except (ValueError, KeyError, TypeError) as error:
            log.warning("session %s unreadable (%s); starting fresh", station_id, error)
            return None
        self._written[station_id] = row[1]
        return state

    def save(self, station_id: str, session: Session) -> None:
        """Write the session's state if it differs from what was last written."""
        try:
            text = state_to_json(session.state)
        except (TypeError, ValueError) as error:
            log.error("session %s not saved: %s", station_id, error)
            return
        if self._written.get(station_id) == text:
            return
        try:
            with self._lock:
                self._conn.execute(
                    "INSERT INTO workstation_session (station_id, format, state, saved_at)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (station_id) DO UPDATE SET"
                    " format = excluded.format, state = excluded.state,"
                    " saved_at = excluded.saved_at",
                    (station_id, FORMAT, text, datetime.now().astimezone().isoformat()),
                )
        except sqlite3.Error as error:
            log.error("session %s not saved: %s", station_id, error)
            return
        self._written[station_id] = text

    def close(self) -> None:
        with self._lock:
            self._conn.close()


# -- the state as JSON (Decimal and date kept as such) -------------------------------


def state_to_json(state: SessionState) -> str:
    body = {
        "operator": state.operator,
        "mode": state.mode,
        "step": state.step,
        "data": {key: _encode(value) for key, value in state.data.items()},
        "last_activity": state.last_activity.isoformat() if state.last_activity else None,
        "labour": state.labour,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def state_from_json(text: str) -> SessionState:
    body = json.loads(text)
    last = body["last_activity"]
    return SessionState(
        operator=body["operator"],
        mode=body["mode"],
        step=body["step"],
        data={key: _decode(value) for key, value in body["data"].items()},
        last_activity=datetime.fromisoformat(last) if last else None,
        labour={str(k): str(v) for k, v in body["labour"].items()},
    )


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    if isinstance(value, datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, date):
        return {"date": value.isoformat()}
    raise TypeError(f"cannot keep {type(value).__name__} in a session")


def _decode(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    ((kind, text),) = value.items()
    if kind == "decimal":
        return Decimal(text)
    if kind == "datetime":
        return datetime.fromisoformat(text)
    if kind == "date":
        return date.fromisoformat(text)
    raise ValueError(f"unknown value kind {kind!r}")
