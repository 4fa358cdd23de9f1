"""The durable outbox: one SQLite file (WAL, synchronous=FULL) per edge.

Invariants:
- `capture` returns only after COMMIT: an acknowledged scan survives a power cut.
- `seq` is SQLite AUTOINCREMENT: strictly increasing in capture order, never reused,
  not even after `purge_sent` empties the table, and independent of the clock.
- Every event is in exactly one state (model.STATES). Only `sent` rows are ever
  deleted (`purge_sent`); nothing unsent is evicted, there is no TTL.
- Parked and held events are out of `next_batch`, so they never block the rest.

One connection, guarded by a lock: the sync thread and the device threads share it.
"""

import json
import math
import os
import shutil
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from edge_agent.ids import device_msg_event_id, uuid7
from edge_agent.outbox import envelope
from edge_agent.outbox.model import (
    HELD,
    PARKED,
    PENDING,
    SENT,
    STATE_AFTER_RESULT,
    Capture,
    Captured,
    OutboxError,
    OutboxEvent,
    OutboxFull,
    OutboxStatus,
    ParkedEvent,
    SendResult,
)
from edge_agent.outbox.schema import CLOCK_SKEW_THRESHOLD_S, migrate

Clock = Callable[[], datetime]

_EVENT_COLUMNS = (
    "seq, event_id, edge_id, device_id, type, payload, payload_sha256, occurred_at,"
    " captured_at, agent_version, state, operator, device_seq, device_msg_id, raw_scan,"
    " reverses_event_id, clock_offset_s, clock_synced, clock_skew, captured_offline,"
    " result_code, result_message, result_at"
)
_WAL_SIZE_LIMIT_BYTES = 1 << 20  # what a reset WAL file is truncated to
_BUSY_TIMEOUT_S = 10.0
_CHECKPOINT_WAIT_MS = 200
_WAL_TRUNCATE_BYTES = 16 * 1024 * 1024
PURGE_CHUNK = 2000  # delivered rows deleted per transaction by purge_sent


def utc_now() -> datetime:
    return datetime.now(UTC)


def _stamp(moment: datetime) -> str:
    """Edge timestamps: UTC, one fixed width, so text order is time order."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _flag(value: int | None) -> bool | None:
    return None if value is None else bool(value)


def _event_from_row(row: sqlite3.Row) -> OutboxEvent:
    return OutboxEvent(
        seq=row["seq"],
        event_id=row["event_id"],
        edge_id=row["edge_id"],
        device_id=row["device_id"],
        type=row["type"],
        payload=json.loads(row["payload"]),
        payload_sha256=row["payload_sha256"],
        occurred_at=datetime.fromisoformat(row["occurred_at"]),
        captured_at=datetime.fromisoformat(row["captured_at"]),
        agent_version=row["agent_version"],
        state=row["state"],
        operator=row["operator"],
        device_seq=row["device_seq"],
        device_msg_id=row["device_msg_id"],
        raw_scan=row["raw_scan"],
        reverses_event_id=row["reverses_event_id"],
        clock_offset_s=row["clock_offset_s"],
        clock_synced=_flag(row["clock_synced"]),
        clock_skew=bool(row["clock_skew"]),
        captured_offline=bool(row["captured_offline"]),
        result_code=row["result_code"],
        result_message=row["result_message"],
        result_at=_time(row["result_at"]),
    )


def _connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=_BUSY_TIMEOUT_S
        )
        conn.row_factory = sqlite3.Row
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA journal_size_limit={_WAL_SIZE_LIMIT_BYTES}")
    except sqlite3.Error as exc:
        raise OutboxError(
            f"cannot open the outbox at {path}: {exc}", code="outbox_unavailable"
        ) from exc
    if mode != "wal":
        conn.close()
        raise OutboxError(
            f"the outbox at {path} cannot use WAL mode (got {mode!r}); put it on a local disk",
            code="outbox_unavailable",
        )
    return conn


class Outbox:
    """The edge's store-and-forward queue of captured events (see the module doc)."""

    EXCEPTIONS_SHOWN = 100  # parked / held events listed by status()
    purge_chunk = PURGE_CHUNK  # delivered rows deleted per transaction by purge_sent

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        edge_id: str,
        identity: str,
        disk_cap_bytes: int,
        agent_version: str,
        min_free_bytes: int = 0,
        clock: Clock = utc_now,
        clock_skew_threshold_s: float = CLOCK_SKEW_THRESHOLD_S,
        replay_after_s: float = envelope.REPLAY_AFTER_S,
    ) -> None:
        self.path = Path(path)
        self.edge_id = edge_id
        self.identity = identity
        self.disk_cap_bytes = disk_cap_bytes
        self.min_free_bytes = min_free_bytes
        self.agent_version = agent_version
        self.clock_skew_threshold_s = clock_skew_threshold_s
        self.replay_after_s = replay_after_s
        self._clock = clock
        self._lock = threading.RLock()
        self._conn = _connect(self.path)
        try:
            self.migrated_from_version = migrate(self._conn)
            row = self._conn.execute("SELECT last_sync_ok FROM sync_state").fetchone()
        except BaseException:
            self._conn.close()
            raise
        self._offline = row["last_sync_ok"] == 0

    # -- capture ---------------------------------------------------------------------

    def capture(
        self, c: Capture, *, clock_offset_s: float | None = None, clock_synced: bool = False
    ) -> Captured:
        """Store one event durably and return its id and seq.

        A capture with a `device_msg_id` already stored is the terminal re-sending:
        the stored event comes back with `duplicate=True` and nothing is written; with
        another type or payload it is refused (`device_msg_conflict`). At the disk cap
        the capture is refused with OutboxFull and nothing is written."""
        payload_json = envelope.checked_payload_json(c)
        digest = envelope.payload_sha256(c.type, c.payload)
        with self._lock:
            now = self._now()
            if c.device_msg_id is None:
                event_id = str(uuid7(int(now.timestamp() * 1000)))
            else:
                event_id = str(device_msg_event_id(self.identity, c.device_id, c.device_msg_id))
                stored = self._resent(c, event_id, digest)
                if stored is not None:
                    return stored
            self._ensure_space()
            row = self._event_row(c, event_id, now, payload_json, digest)
            row["clock_synced"] = int(clock_synced)
            # not finite: unknown (the cloud's envelope refuses inf and NaN)
            row["clock_offset_s"] = clock_offset_s if _finite(clock_offset_s) else None
            try:
                seq = self._insert_event(row)
            except sqlite3.IntegrityError:  # another process stored this message first
                stored = self._resent(c, event_id, digest)
                if stored is None:
                    raise
                return stored
            return Captured(event_id=event_id, seq=seq, duplicate=False)

    def _event_row(
        self, c: Capture, event_id: str, now: datetime, payload_json: str, digest: str
    ) -> dict[str, Any]:
        return {
            "event_id": event_id,
            "edge_id": self.edge_id,
            "device_id": c.device_id,
            "device_seq": c.device_seq,
            "device_msg_id": c.device_msg_id,
            "type": c.type,
            "occurred_at": c.occurred_at.isoformat(),
            "captured_at": _stamp(now),
            "operator": c.operator,
            "payload": payload_json,
            "payload_sha256": digest,
            "reverses_event_id": c.reverses_event_id,
            "agent_version": self.agent_version,
            "captured_offline": int(self._offline),
            "raw_scan": c.raw_scan,
            "clock_skew": int(self._is_skewed(c.occurred_at, now)),
        }

    def _insert_event(self, row: dict[str, Any]) -> int:
        columns = ", ".join(row)
        marks = ", ".join(f":{name}" for name in row)
        try:
            with self._write():
                cursor = self._conn.execute(f"INSERT INTO event ({columns}) VALUES ({marks})", row)
        except sqlite3.OperationalError as exc:
            if "full" in str(exc):
                raise OutboxFull(
                    f"the disk holding the outbox is full ({exc}); the scan was refused and "
                    "nothing was written. Free disk space; unsent events are kept."
                ) from exc
            raise
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def _resent(self, c: Capture, event_id: str, digest: str) -> Captured | None:
        """The stored event when this device message was captured before."""
        row = self._conn.execute(
            "SELECT seq, payload_sha256 FROM event WHERE event_id = ?", (event_id,)
        ).fetchone()
        if row is None:
            return None
        if row["payload_sha256"] != digest:
            raise OutboxError(
                f"device {c.device_id} re-sent message {c.device_msg_id!r} with another "
                f"type or payload than event {event_id} (seq {row['seq']}) stored for it; "
                "the terminal must use a new message id for a new event",
                code="device_msg_conflict",
            )
        return Captured(event_id=event_id, seq=row["seq"], duplicate=True)

    def _is_skewed(self, occurred_at: datetime, now: datetime) -> bool:
        return abs((occurred_at - now).total_seconds()) > self.clock_skew_threshold_s

    # -- sending ---------------------------------------------------------------------

    def next_batch(self, limit: int) -> list[OutboxEvent]:
        """Up to `limit` pending events, in seq order (parked and held ones skipped)."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_EVENT_COLUMNS} FROM event WHERE state = ? ORDER BY seq LIMIT ?",
                (PENDING, limit),
            ).fetchall()
        return [_event_from_row(row) for row in rows]

    def event(self, event_id: str) -> OutboxEvent | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_EVENT_COLUMNS} FROM event WHERE event_id = ?", (event_id,)
            ).fetchone()
        return None if row is None else _event_from_row(row)

    def wire(self, ev: OutboxEvent) -> dict[str, Any]:
        """The JSON-ready envelope for POST /api/v1/edge/events (envelope.wire)."""
        return envelope.wire(ev, self._now(), self.replay_after_s)

    def record_results(self, results: Iterable[SendResult]) -> None:
        """Apply the cloud's answers in one transaction (see model.STATE_AFTER_RESULT).

        Every answer is kept in `event_history`. A delivered event stays delivered;
        an unknown status leaves the event as it is; an answer for an event this
        outbox does not hold (purged already) is ignored."""
        with self._lock:
            at = _stamp(self._now())
            with self._write():
                for result in results:
                    self._apply_result(result, at)
            self._checkpoint_if_long()

    def _apply_result(self, result: SendResult, at: str) -> None:
        status = str(result.status)
        row = self._conn.execute(
            "SELECT seq, state FROM event WHERE event_id = ?", (result.event_id,)
        ).fetchone()
        if row is None:
            return
        self._log(result.event_id, at, status, result.code, result.message)
        new_state = STATE_AFTER_RESULT.get(status)
        if new_state is None or row["state"] == SENT:
            return
        self._conn.execute(
            "UPDATE event SET state = ?, result_code = ?, result_message = ?, result_at = ?,"
            " sent_at = ? WHERE seq = ?",
            (
                new_state,
                result.code,
                result.message,
                at,
                at if new_state == SENT else None,
                row["seq"],
            ),
        )

    def _log(self, event_id: str, at: str, what: str, code: str | None, message: str | None):
        self._conn.execute(
            "INSERT INTO event_history (event_id, at, what, code, message) VALUES (?, ?, ?, ?, ?)",
            (event_id, at, what, code, message),
        )

    def note_sync(self, *, ok: bool, error: str | None = None, at: datetime | None = None) -> None:
        """Record a sync attempt. While the last one failed, captures are flagged
        `captured_offline` (hence sent as replayed)."""
        with self._lock:
            stamp = _stamp(at or self._now())
            with self._write():
                self._conn.execute(
                    "UPDATE sync_state SET last_sync_at = ?, last_sync_ok = ?,"
                    " last_sync_error = ?,"
                    " last_sync_ok_at = CASE WHEN ? THEN ? ELSE last_sync_ok_at END",
                    (stamp, int(ok), None if ok else error, int(ok), stamp),
                )
            self._offline = not ok

    def retry(self, event_id: str) -> None:
        """Put a parked or held event back to pending, with the same id (after the
        master data is fixed). Pending: nothing to do. Sent: refused."""
        with self._lock, self._write():
            row = self._conn.execute(
                "SELECT seq, state FROM event WHERE event_id = ?", (event_id,)
            ).fetchone()
            if row is None:
                raise OutboxError(f"no event {event_id} in this outbox", code="unknown_event")
            if row["state"] == SENT:
                raise OutboxError(
                    f"event {event_id} was already delivered; nothing to retry",
                    code="already_delivered",
                )
            if row["state"] in (PARKED, HELD):
                self._conn.execute(
                    "UPDATE event SET state = ? WHERE seq = ?", (PENDING, row["seq"])
                )
                self._log(event_id, _stamp(self._now()), "retry", None, None)

    # -- housekeeping ----------------------------------------------------------------

    def purge_sent(
        self,
        older_than: timedelta,
        *,
        captured_before: timedelta | None = None,
        max_rows: int | None = None,
    ) -> int:
        """Delete delivered events (and their history) sent before now - older_than
        and, when given, captured before now - captured_before; return how many. The
        only deletion there is: unsent rows are never touched.

        The rows go in transactions of `purge_chunk`, the lock let go between them, so
        live captures wait for one chunk at most, never for a whole day's purge. A
        seq is never reused (AUTOINCREMENT keeps the high mark in sqlite_sequence)."""
        now = self._now()
        sent_cutoff = _stamp(now - older_than)
        captured_cutoff = None if captured_before is None else _stamp(now - captured_before)
        purged = 0
        while max_rows is None or purged < max_rows:
            chunk = self.purge_chunk
            limit = chunk if max_rows is None else min(chunk, max_rows - purged)
            with self._lock:
                deleted = self._purge_chunk(sent_cutoff, captured_cutoff, limit)
                self._checkpoint_if_long()
            purged += deleted
            if deleted < limit:
                break
        if purged:
            with self._lock:
                self._checkpoint()  # the freed pages count as free only once in the file
        return purged

    def _purge_chunk(self, sent_cutoff: str, captured_cutoff: str | None, limit: int) -> int:
        # The partial index (schema V3), named: without statistics SQLite would walk
        # event_by_state through every delivered row instead.
        sql = (
            "SELECT seq, event_id FROM event INDEXED BY event_sent_at"
            " WHERE state = 'sent' AND sent_at < ?"
        )
        args: list[Any] = [sent_cutoff]
        if captured_cutoff is not None:
            sql += " AND captured_at < ?"
            args.append(captured_cutoff)
        with self._write():
            found = self._conn.execute(f"{sql} LIMIT ?", (*args, limit)).fetchall()
            self._conn.executemany(
                "DELETE FROM event_history WHERE event_id = ?", [(r[1],) for r in found]
            )
            self._conn.executemany("DELETE FROM event WHERE seq = ?", [(r[0],) for r in found])
        return len(found)

    def meta_get(self, key: str) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    def meta_set(self, key: str, value: str) -> None:
        with self._lock, self._write():
            self._conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def meta_delete(self, key: str) -> None:
        with self._lock, self._write():
            self._conn.execute("DELETE FROM meta WHERE key = ?", (key,))

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "Outbox":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- status and space ------------------------------------------------------------

    def status(self) -> OutboxStatus:
        with self._lock:
            now = self._now()
            counts = dict(
                self._conn.execute("SELECT state, count(*) FROM event GROUP BY state").fetchall()
            )
            oldest = self._conn.execute(
                "SELECT captured_at FROM event WHERE state = ? ORDER BY seq LIMIT 1", (PENDING,)
            ).fetchone()
            skewed = self._conn.execute("SELECT count(*) FROM event WHERE clock_skew").fetchone()
            sync = self._conn.execute("SELECT * FROM sync_state").fetchone()
            used, free = self._space()
            oldest_at = None if oldest is None else datetime.fromisoformat(oldest[0])
            return OutboxStatus(
                backlog=counts.get(PENDING, 0),
                oldest_pending_captured_at=oldest_at,
                oldest_pending_age_s=(
                    None if oldest_at is None else max(0.0, (now - oldest_at).total_seconds())
                ),
                held_count=counts.get(HELD, 0),
                parked_count=counts.get(PARKED, 0),
                parked=self._exceptions(PARKED),
                held=self._exceptions(HELD),
                sent_count=counts.get(SENT, 0),
                clock_skew_count=skewed[0],
                last_sync_at=_time(sync["last_sync_at"]),
                last_sync_ok_at=_time(sync["last_sync_ok_at"]),
                last_sync_error=sync["last_sync_error"],
                bytes_used=used,
                disk_cap_bytes=self.disk_cap_bytes,
                free_bytes=free,
                full=self._is_full(used, free),
            )

    def _exceptions(self, state: str) -> tuple[ParkedEvent, ...]:
        rows = self._conn.execute(
            "SELECT event_id, seq, type, state, result_code, result_message, result_at"
            " FROM event WHERE state = ? ORDER BY seq LIMIT ?",
            (state, self.EXCEPTIONS_SHOWN),
        ).fetchall()
        return tuple(
            ParkedEvent(
                event_id=row["event_id"],
                seq=row["seq"],
                type=row["type"],
                state=row["state"],
                code=row["result_code"],
                message=row["result_message"],
                at=_time(row["result_at"]),
            )
            for row in rows
        )

    def space(self) -> tuple[int, int]:
        """(bytes the outbox holds, free bytes on its disk): what the disk cap and the
        free-space floor are checked against (see _space)."""
        with self._lock:
            return self._space()

    def _space(self) -> tuple[int, int]:
        """(bytes the outbox holds: live pages + WAL file, free bytes on its disk).
        Free pages left by purge_sent are reused by SQLite, so they do not count."""
        page_size = self._conn.execute("PRAGMA page_size").fetchone()[0]
        pages = self._conn.execute("PRAGMA page_count").fetchone()[0]
        free_pages = self._conn.execute("PRAGMA freelist_count").fetchone()[0]
        wal = Path(f"{self.path}-wal")
        wal_bytes = wal.stat().st_size if wal.exists() else 0
        free = shutil.disk_usage(self.path.parent).free
        return (pages - free_pages) * page_size + wal_bytes, free

    def _is_full(self, used: int, free: int) -> bool:
        return used >= self.disk_cap_bytes or free < self.min_free_bytes

    def _ensure_space(self) -> None:
        used, free = self._space()
        if not self._is_full(used, free):
            return
        self._checkpoint()  # a long WAL may be all that is over the cap
        used, free = self._space()
        if self._is_full(used, free):
            raise OutboxFull(
                f"the outbox is full ({used} bytes used, cap {self.disk_cap_bytes}; "
                f"{free} bytes free on disk, floor {self.min_free_bytes}): the scan was "
                "refused and nothing was written. Unsent events are kept; capture resumes "
                "once the cloud is reachable again and delivered events are purged."
            )

    def _checkpoint_if_long(self) -> None:
        """Truncate the WAL once it is long; until then SQLite's own passive
        checkpoints keep it in bounds. A truncating checkpoint after every batch
        made live scans wait for its fsyncs (bench/edge.py: p99 79 ms while draining)."""
        wal = Path(f"{self.path}-wal")
        if wal.exists() and wal.stat().st_size > _WAL_TRUNCATE_BYTES:
            self._checkpoint()

    def _checkpoint(self) -> None:
        """Copy the WAL into the database file and truncate it. Best effort: a reader in
        another process (`erp edge status`) may make SQLite skip it, which is harmless;
        the wait for it is kept short, since captures wait for the lock meanwhile."""
        self._conn.execute(f"PRAGMA busy_timeout = {_CHECKPOINT_WAIT_MS}")
        try:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            self._conn.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")

    @contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction; BEGIN IMMEDIATE takes the write lock up front."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise

    def _now(self) -> datetime:
        now = self._clock()
        if now.utcoffset() is None:
            raise OutboxError("the outbox clock returned a naive time", code="invalid_clock")
        return now.astimezone(UTC)
