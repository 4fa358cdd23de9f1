"""The outbox's size over a soak of millions of events (issue 15, item 2).

Before the purge loop, sent rows were never deleted: at the default 512 MB cap a busy
edge refused every scan for good after about a million events. This soak pushes N
events through what the agent does with each one:

    Outbox.capture -> next_batch / record_results("posted") in batches, as the sync
    does -> the agent's purge step (outbox.retention.purge) every --purge-every-s of
    edge time, and once more when a capture meets the cap (Agent._capture)

on a simulated edge clock that moves `1 / --rate` seconds per event, so a day of a
busy edge passes in minutes. Half the events carry a terminal's message id (their
event id is a uuid5, random in the index), half are scanner events (UUIDv7). It prints
the outbox file's size (database + WAL) every --report-every events: it must stay flat
once the retention (or the cap's pressure) is reached. The figures: the soak's events/s,
and the raw limit in the same run, bare one-row INSERT + COMMIT transactions on a file
with the same pragmas on the same disk.

The file runs with `synchronous=NORMAL` unless --synchronous FULL is given: the size is
what is measured here; the fsync'd capture rate is `erp bench edge capture`'s figure.

    .venv/bin/python -m bench.outbox_soak --events 3000000
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from edge_agent.outbox import Capture, Outbox, OutboxFull, Retention, SendResult, purge
from edge_agent.outbox.retention import INLINE_PURGE_ROWS

START = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)


class EdgeClock:
    """Edge time: moves `step_s` at each tick, whatever the wall clock does."""

    def __init__(self, step_s: float) -> None:
        self.now = START
        self.step = timedelta(seconds=step_s)

    def __call__(self) -> datetime:
        return self.now

    def tick(self) -> None:
        self.now += self.step


def _capture(i: int, at: datetime) -> Capture:
    payload = {"work_order": f"WO{i % 20}", "item": "RAW", "location": "WH"}
    payload["quantity"] = str(i % 7 + 1)
    terminal = i % 2 == 0
    return Capture(
        type="material_issue",
        payload=payload,
        device_id="TERM-01" if terminal else "scanner-ws-1",
        occurred_at=at,
        operator="B-1",
        device_msg_id=f"m-{i}" if terminal else None,
        raw_scan=None if terminal else "]C0RAW",
    )


def _file_bytes(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def _raw_rate(path: Path, synchronous: str, n: int) -> float:
    """Bare one-row INSERT + COMMIT transactions, same pragmas, same disk."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL)")
    body = '{"work_order":"WO1","item":"RAW","location":"WH","quantity":"1"}'
    started = time.perf_counter()
    for _ in range(n):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (body) VALUES (?)", (body,))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return n / elapsed


class Soak:
    def __init__(self, args: argparse.Namespace, directory: Path) -> None:
        self.args = args
        self.clock = EdgeClock(1 / args.rate)
        self.path = directory / "outbox.sqlite3"
        self.outbox = Outbox(
            self.path,
            edge_id="edge-soak",
            identity="tenant-soak",
            disk_cap_bytes=args.cap_mb * 1024 * 1024,
            agent_version="soak",
            clock=self.clock,
        )
        self.outbox._conn.execute(f"PRAGMA synchronous={args.synchronous}")
        self.retention = Retention(
            keep_sent=timedelta(seconds=args.keep_sent_s),
            dedup_window=timedelta(seconds=args.dedup_window_s),
        )
        self.purged = self.refused = self.inline_purges = 0
        self.max_file = 0

    def capture(self, i: int) -> None:
        """As Agent._capture: at the cap, one bounded purge, then once more."""
        c = _capture(i, self.clock.now)
        try:
            self.outbox.capture(c)
        except OutboxFull:
            self.inline_purges += 1
            report = purge(self.outbox, self.retention, max_rows=INLINE_PURGE_ROWS)
            self.purged += report.purged
            try:
                self.outbox.capture(c)
            except OutboxFull:
                self.refused += 1

    def deliver(self) -> None:
        while batch := self.outbox.next_batch(self.args.batch):
            self.outbox.record_results([SendResult(ev.event_id, "posted") for ev in batch])

    def sample(self, done: int, started: float, last: tuple[int, float]) -> tuple[int, float]:
        now = time.perf_counter()
        size = _file_bytes(self.path)
        self.max_file = max(self.max_file, size)
        live, _ = self.outbox.space()
        kept = self.outbox._conn.execute("SELECT count(*) FROM event").fetchone()[0]
        hours = (self.clock.now - START).total_seconds() / 3600
        rate = (done - last[0]) / (now - last[1])
        print(
            f"{done:>10,} events  edge {hours:6.1f} h  file {size / 2**20:7.1f} MB"
            f"  live {live / 2**20:7.1f} MB  rows kept {kept:>9,}  purged {self.purged:>10,}"
            f"  {rate:>7,.0f} ev/s  ({now - started:6.0f} s)",
            flush=True,
        )
        return done, now

    def run(self) -> dict[str, Any]:
        args = self.args
        every = max(1, round(args.purge_every_s * args.rate))
        started = time.perf_counter()
        last = (0, started)
        for i in range(args.events):
            self.clock.tick()
            self.capture(i)
            if (i + 1) % args.batch == 0:
                self.deliver()
            if (i + 1) % every == 0:  # the agent's purge loop, every purge_every_s
                self.purged += purge(self.outbox, self.retention).purged
            if (i + 1) % args.report_every == 0:
                last = self.sample(i + 1, started, last)
        self.deliver()
        elapsed = time.perf_counter() - started
        integrity = self.outbox._conn.execute("PRAGMA integrity_check").fetchone()[0]
        self.outbox.close()
        return {
            "events_per_s": args.events / elapsed,
            "elapsed_s": elapsed,
            "final_file_bytes": _file_bytes(self.path),
            "max_file_bytes": self.max_file,
            "purged": self.purged,
            "refused": self.refused,
            "inline_purges": self.inline_purges,
            "integrity": integrity,
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=3_000_000)
    parser.add_argument("--rate", type=float, default=50.0, help="edge events per second")
    parser.add_argument("--cap-mb", type=int, default=512, help="disk_cap_mb")
    parser.add_argument("--keep-sent-s", type=float, default=86400.0)
    parser.add_argument("--dedup-window-s", type=float, default=900.0)
    parser.add_argument("--purge-every-s", type=float, default=60.0)
    parser.add_argument("--batch", type=int, default=500, help="the sync's batch size")
    parser.add_argument("--report-every", type=int, default=250_000)
    parser.add_argument("--raw-events", type=int, default=50_000)
    parser.add_argument("--synchronous", choices=("FULL", "NORMAL", "OFF"), default="NORMAL")
    parser.add_argument("--dir", type=Path, default=None, help="where the outbox goes")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="outbox-soak-") as tmp:
        directory = Path(tmp)
        print(
            f"soak: {args.events:,} events at {args.rate:g}/s of edge time, cap {args.cap_mb} MB,"
            f" keep_sent {args.keep_sent_s:g} s, dedup window {args.dedup_window_s:g} s,"
            f" purge every {args.purge_every_s:g} s, synchronous={args.synchronous}",
            flush=True,
        )
        result = Soak(args, directory).run()
        raw = _raw_rate(directory / "raw.sqlite3", args.synchronous, args.raw_events)
    print(
        f"soak: {result['events_per_s']:,.0f} events/s ({result['elapsed_s']:.0f} s);"
        f" raw one-row INSERT+COMMIT: {raw:,.0f}/s (ratio {result['events_per_s'] / raw:.2f})"
    )
    print(
        f"file: max {result['max_file_bytes'] / 2**20:.1f} MB,"
        f" at the end {result['final_file_bytes'] / 2**20:.1f} MB;"
        f" purged {result['purged']:,}; refused {result['refused']};"
        f" purges at the cap {result['inline_purges']}; integrity_check {result['integrity']}"
    )


if __name__ == "__main__":
    main()
