"""A persisted print queue: every submitted label is printed exactly once.

Jobs live in SQLite (WAL, `synchronous=FULL`) in tables prefixed `label_`, so the file
may be the edge's own database. A job's life, declared in `TRANSITIONS`:

    queued ──run_once──> sending ──printer took every byte──> printed
                           ├── printer down before any byte ──> queued (last_error kept)
                           └── failed mid-transfer, or the agent died ──> uncertain
    uncertain ──confirm(printed=True)──> printed
    uncertain ──confirm(printed=False)──> queued (printed again on the next run)

`sending` is committed before the first byte leaves. Raw port 9100 and a serial line
cannot say whether a label came out, so a job found in `sending` after a crash is
never re-sent automatically: it becomes `uncertain` and waits for an operator, who
looks at the printer and confirms. That is "exactly once" with the operator deciding
the one case no program can. A down printer keeps its jobs queued, in order, and they
print when it is back; it never holds up the jobs of other printers.

Only one process runs the queue at a time (an advisory lock on `<db>.label-runner.lock`,
released by the kernel if the process dies); so a job in `sending` seen by the runner
that holds the lock can only be left over from a crash.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import sqlite3
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from edge_agent.labels.errors import (
    InvalidLabel,
    InvalidTransition,
    JobConflict,
    PrinterUnavailable,
    QueueBusy,
    UnknownJob,
)
from edge_agent.labels.kinds import Label, label_fields, label_from_fields
from edge_agent.labels.printers import Printer
from edge_agent.labels.zpl import MAX_COPIES, render_zpl

JobState = Literal["queued", "sending", "printed", "uncertain"]
QUEUED: JobState = "queued"
SENDING: JobState = "sending"
PRINTED: JobState = "printed"
UNCERTAIN: JobState = "uncertain"
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    QUEUED: frozenset({SENDING}),
    SENDING: frozenset({PRINTED, QUEUED, UNCERTAIN}),
    UNCERTAIN: frozenset({PRINTED, QUEUED}),  # only by an operator's confirm()
    PRINTED: frozenset(),
}
JOB_ID_MAX_CHARS = 100
MAX_JOBS_PER_RUN = 100

_SCHEMA = """
CREATE TABLE IF NOT EXISTS label_print_job (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL UNIQUE,
    printer_name TEXT NOT NULL,
    kind TEXT NOT NULL,
    fields_json TEXT NOT NULL,
    copies INTEGER NOT NULL CHECK (copies >= 1),
    request_sha256 TEXT NOT NULL,
    zpl BLOB NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'sending', 'printed', 'uncertain')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    submitted_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS label_print_job_by_state ON label_print_job (state, seq);
CREATE TABLE IF NOT EXISTS label_print_job_event (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL REFERENCES label_print_job (job_id),
    at TEXT NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    detail TEXT
);
"""
_JOB_COLUMNS = (
    "job_id, seq, printer_name, kind, fields_json, copies, state, attempts, last_error,"
    " submitted_at, updated_at"
)


@dataclass(frozen=True)
class PrintJob:
    job_id: str
    seq: int
    printer_name: str
    kind: str
    fields: dict[str, str]
    copies: int
    state: JobState
    attempts: int
    last_error: str | None
    submitted_at: str
    updated_at: str

    def label(self) -> Label:
        return label_from_fields(self.kind, self.fields)


@dataclass(frozen=True)
class JobResult:
    """What one `run_once` did with one job."""

    job_id: str
    printer_name: str
    state: JobState
    error: str | None = None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _job(row: tuple[Any, ...]) -> PrintJob:
    job_id, seq, printer_name, kind, fields_json, copies, state, attempts, error, at, updated = row
    return PrintJob(
        job_id=job_id,
        seq=seq,
        printer_name=printer_name,
        kind=kind,
        fields=json.loads(fields_json),
        copies=copies,
        state=state,
        attempts=attempts,
        last_error=error,
        submitted_at=at,
        updated_at=updated,
    )


def _check_request(job_id: str, printer_name: str, copies: int) -> None:
    if not 1 <= len(job_id) <= JOB_ID_MAX_CHARS or not job_id.isprintable():
        raise InvalidLabel(
            "invalid_job_id", f"job id must be 1..{JOB_ID_MAX_CHARS} printable characters"
        )
    if not printer_name:
        raise InvalidLabel("invalid_printer_name", "a print job needs a printer name")
    if not 1 <= copies <= MAX_COPIES:
        raise InvalidLabel("invalid_copies", f"copies must be 1..{MAX_COPIES}, got {copies}")


def _request_digest(kind: str, fields: dict[str, str], printer_name: str, copies: int) -> str:
    """What was asked, not the ZPL: a retry after an upgrade that lays labels out
    differently is still the same job."""
    request = {"kind": kind, "fields": fields, "printer": printer_name, "copies": copies}
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()


class PrintQueue:
    """The print queue stored at `path` (created if missing)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        with self._transaction():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> PrintQueue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def submit(
        self, label: Label, printer_name: str, copies: int = 1, job_id: str | None = None
    ) -> str:
        """Queue `copies` of `label` for `printer_name`; returns the job id.

        Idempotent on `job_id`: the same id with the same label, printer and copies
        returns the existing job; with anything else raises `JobConflict`.
        """
        job_id = job_id if job_id is not None else str(uuid.uuid4())
        _check_request(job_id, printer_name, copies)
        fields = label_fields(label)
        digest = _request_digest(label.kind, fields, printer_name, copies)
        zpl = render_zpl(label, copies=copies)
        with self._transaction():
            row = self._db.execute(
                "SELECT request_sha256 FROM label_print_job WHERE job_id = ?", (job_id,)
            ).fetchone()
            if row is not None:
                if row[0] != digest:
                    raise JobConflict(job_id)
                return job_id
            now = _now()
            self._db.execute(
                "INSERT INTO label_print_job (job_id, printer_name, kind, fields_json, copies,"
                " request_sha256, zpl, state, submitted_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    *(job_id, printer_name, label.kind, json.dumps(fields, sort_keys=True)),
                    *(copies, digest, zpl, QUEUED, now, now),
                ),
            )
            self._record(job_id, None, QUEUED, "submitted", now)
        return job_id

    def _record(
        self, job_id: str, from_state: str | None, to_state: str, detail: str, at: str
    ) -> None:
        self._db.execute(
            "INSERT INTO label_print_job_event (job_id, at, from_state, to_state, detail)"
            " VALUES (?, ?, ?, ?, ?)",
            (job_id, at, from_state, to_state, detail),
        )

    def _transition(
        self,
        job_id: str,
        from_state: JobState,
        to_state: JobState,
        detail: str,
        *,
        error: str | None = None,
    ) -> None:
        if to_state not in TRANSITIONS[from_state]:
            raise InvalidTransition(job_id, from_state, to_state)
        now = _now()
        with self._transaction():
            updated = self._db.execute(
                "UPDATE label_print_job SET state = ?, updated_at = ?,"
                " last_error = COALESCE(?, last_error), attempts = attempts + ?"
                " WHERE job_id = ? AND state = ?",
                (to_state, now, error, int(to_state == SENDING), job_id, from_state),
            ).rowcount
            if updated != 1:
                raise InvalidTransition(job_id, self.job(job_id).state, to_state)
            self._record(job_id, from_state, to_state, detail, now)

    def job(self, job_id: str) -> PrintJob:
        row = self._db.execute(
            f"SELECT {_JOB_COLUMNS} FROM label_print_job WHERE job_id = ?", (job_id,)
        ).fetchone()
        if row is None:
            raise UnknownJob(job_id)
        return _job(row)

    def jobs(self, state: JobState | None = None, *, limit: int = 1000) -> list[PrintJob]:
        """Jobs in submission order, optionally only those in `state`."""
        where, params = ("WHERE state = ?", (state,)) if state else ("", ())
        rows = self._db.execute(
            f"SELECT {_JOB_COLUMNS} FROM label_print_job {where} ORDER BY seq LIMIT ?",
            (*params, limit),
        ).fetchall()
        return [_job(row) for row in rows]

    def history(self, job_id: str) -> list[tuple[str, str | None, str, str]]:
        """(at, from_state, to_state, detail) for each step of a job, oldest first."""
        return self._db.execute(
            "SELECT at, from_state, to_state, detail FROM label_print_job_event"
            " WHERE job_id = ? ORDER BY id",
            (job_id,),
        ).fetchall()

    def confirm(self, job_id: str, printed: bool) -> PrintJob:
        """An operator's word on an `uncertain` job: printed, or to be printed again."""
        state = self.job(job_id).state
        if state != UNCERTAIN:
            raise InvalidTransition(job_id, state, PRINTED if printed else QUEUED)
        if printed:
            self._transition(job_id, UNCERTAIN, PRINTED, "operator confirmed it printed")
        else:
            self._transition(job_id, UNCERTAIN, QUEUED, "operator: not printed; queued again")
        return self.job(job_id)

    @contextlib.contextmanager
    def _runner_lock(self) -> Iterator[None]:
        with open(f"{self.path}.label-runner.lock", "a+b") as lock_file:
            try:
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise QueueBusy(self.path) from exc
            try:
                yield
            finally:
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)

    def _mark_interrupted_uncertain(self) -> list[JobResult]:
        results = []
        for job in self.jobs(SENDING, limit=MAX_JOBS_PER_RUN):
            detail = "interrupted while sending; an operator must confirm whether it printed"
            self._transition(job.job_id, SENDING, UNCERTAIN, detail, error=detail)
            results.append(JobResult(job.job_id, job.printer_name, UNCERTAIN, "interrupted"))
        return results

    def _queued(self, printer_names: list[str], limit: int) -> list[tuple[str, str]]:
        marks = ", ".join("?" * len(printer_names))
        return self._db.execute(
            "SELECT job_id, printer_name FROM label_print_job"
            f" WHERE state = ? AND printer_name IN ({marks}) ORDER BY seq LIMIT ?",
            (QUEUED, *printer_names, limit),
        ).fetchall()

    def _print_one(self, job_id: str, printer_name: str, printer: Printer) -> JobResult:
        self._transition(job_id, QUEUED, SENDING, f"sending to {printer_name}")
        (zpl,) = self._db.execute(
            "SELECT zpl FROM label_print_job WHERE job_id = ?", (job_id,)
        ).fetchone()
        try:
            printer.send(bytes(zpl))
        except PrinterUnavailable as exc:
            state = UNCERTAIN if exc.maybe_sent else QUEUED
            self._transition(job_id, SENDING, state, exc.message, error=exc.message)
            return JobResult(job_id, printer_name, state, exc.message)
        except Exception as exc:
            error = f"unexpected error while sending: {exc!r}"
            self._transition(job_id, SENDING, UNCERTAIN, error, error=error)
            raise
        self._transition(job_id, SENDING, PRINTED, f"sent to {printer_name}")
        return JobResult(job_id, printer_name, PRINTED)

    def run_once(
        self, printers: Mapping[str, Printer], *, max_jobs: int = MAX_JOBS_PER_RUN
    ) -> list[JobResult]:
        """Send queued jobs for the given printers, oldest first; one result per job
        touched (jobs left over in `sending` by a crash come back as `uncertain`).

        A printer that is down keeps the rest of its jobs queued for the next run;
        jobs for printers not in `printers` are left alone. Raises `QueueBusy` when
        another process is running this queue.
        """
        with self._runner_lock():
            results = self._mark_interrupted_uncertain()
            if not printers:
                return results
            down: set[str] = set()
            for job_id, printer_name in self._queued(list(printers), max_jobs):
                if printer_name in down:
                    continue
                result = self._print_one(job_id, printer_name, printers[printer_name])
                results.append(result)
                if result.state == QUEUED:
                    down.add(printer_name)
            return results
