"""The edge agent: devices → sessions → outbox → cloud.

One `Agent` owns the outbox, the master-data cache, a session per workstation and the
background loops (sync, master-data pull, heartbeat). Device bridges call `scan()`
(scanners) and `terminal()` (work-reporting terminals); each returns the answer for the
device only after the event is committed to the outbox (EDGE.md guarantee 1).

The purge loop deletes what the cloud confirmed, after the retention the config sets
(outbox/retention.py); without it the disk cap, once reached, would never lift.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from edge_agent import __version__
from edge_agent.config import EdgeConfig
from edge_agent.masterdata import MasterDataCache
from edge_agent.outbox import (
    Capture,
    Captured,
    Outbox,
    OutboxError,
    OutboxFull,
    PurgeReport,
    Retention,
    purge,
)
from edge_agent.outbox.retention import INLINE_PURGE_ROWS
from edge_agent.session_store import SessionStore, session_store_path
from edge_agent.sessions import Answer, ScanInput, ScanProblem, Session
from edge_agent.sync import CloudClient, CloudError, Syncer, measure_clock

log = logging.getLogger("edge_agent")
LABOUR_META = "labour:{station}"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Loop:
    name: str
    every_s: float
    step: Callable[[], object]  # what it returns is not used


class Agent:
    def __init__(
        self,
        config: EdgeConfig,
        *,
        client: CloudClient | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.config = config
        self.clock = clock
        config.outbox_path.parent.mkdir(parents=True, exist_ok=True)
        config.masterdata_path.parent.mkdir(parents=True, exist_ok=True)
        self.outbox = Outbox(
            config.outbox_path,
            edge_id=config.edge_id,
            identity=config.edge_id,
            disk_cap_bytes=config.disk_cap_bytes,
            min_free_bytes=config.min_free_bytes,
            agent_version=__version__,
        )
        self.retention = Retention(
            keep_sent=timedelta(seconds=config.keep_sent_s),
            dedup_window=timedelta(seconds=config.dedup_window_s),
        )
        self.cache = MasterDataCache(config.masterdata_path)
        self.client = client or CloudClient(config.cloud_url, config.api_key)
        self.syncer = Syncer(self.outbox, self.client, batch_size=config.batch_size)
        self.sessions = {s.station.id: Session(s.station, self.cache.data) for s in config.stations}
        self._session_locks = {sid: threading.Lock() for sid in self.sessions}
        for sid, session in self.sessions.items():
            saved = self.outbox.meta_get(LABOUR_META.format(station=sid))
            if saved:
                session.restore_labour(json.loads(saved))
        # badge, order and step kept across a restart, with their idle timeout
        self.session_store = SessionStore(session_store_path(config.outbox_path))
        self.session_store.attach(self.sessions, self.clock())
        self.clock_offset_s: float | None = None
        # what the device hub reports of its devices, for the heartbeat
        self.device_state: Callable[[], list[dict[str, Any]]] = list
        self.stop_event = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- devices ---------------------------------------------------------------
    def scan(
        self,
        station_id: str,
        text: str,
        *,
        gs1: Any = None,
        raw: str | None = None,
        symbology: str | None = None,
        problem: ScanProblem | None = None,
    ) -> Answer:
        """A scan at a workstation: fed to its session; a confirmed transaction is
        committed to the outbox before the answer is returned."""
        session = self.sessions[station_id]
        station = self.config.station(station_id)
        with self._session_locks[station_id]:
            session.md = self.cache.data
            scan = ScanInput(text, gs1, symbology, problem)
            outcome = session.feed(scan, self.clock())
            if outcome.draft is None:
                return outcome.answer
            draft = outcome.draft
            try:
                self._capture(
                    Capture(
                        type=draft.type,
                        payload=draft.payload,
                        device_id=station.device_id,
                        occurred_at=draft.occurred_at,
                        operator=draft.operator,
                        raw_scan=raw,
                    )
                )
            except OutboxError as error:
                session.undo()
                log.error("capture refused at %s: %s", station_id, error)
                return Answer(False, f"NOT SAVED: {error}")
            self._save_labour(station_id, session)
        self.syncer.wake.set()
        return outcome.answer

    def capture(self, capture: Capture) -> bool:
        """Commit an event built by a bridge (a terminal report); True when it was a
        re-send of a message already stored. Raises OutboxError when refused."""
        captured = self._capture(capture)
        self.syncer.wake.set()
        return captured.duplicate

    def _capture(self, capture: Capture) -> Captured:
        """Commit one event. At the disk cap, first purge what the cloud has confirmed
        (a bounded number of rows, within the retention) and try once more, so a scan
        is refused only when nothing delivered may go yet, not until the next turn of
        the purge loop."""
        try:
            return self._commit(capture)
        except OutboxFull:
            if not purge(self.outbox, self.retention, max_rows=INLINE_PURGE_ROWS).purged:
                raise
            return self._commit(capture)

    def _commit(self, capture: Capture) -> Captured:
        return self.outbox.capture(
            capture,
            clock_offset_s=self.clock_offset_s,
            clock_synced=self.clock_offset_s is not None,
        )

    def _save_labour(self, station_id: str, session: Session) -> None:
        self.outbox.meta_set(
            LABOUR_META.format(station=station_id), json.dumps(session.open_labour())
        )

    def tick(self) -> dict[str, Answer]:
        """Time out half-done transactions; answers for the stations that timed out."""
        answers = {}
        for sid, session in self.sessions.items():
            with self._session_locks[sid]:
                answer = session.tick(self.clock())
            if answer is not None:
                answers[sid] = answer
        return answers

    def purge(self) -> PurgeReport:
        """The purge loop's step: delete delivered events past the retention."""
        report = purge(self.outbox, self.retention)
        if report.purged:
            log.info(
                "purged %d delivered event(s)%s",
                report.purged,
                " (the outbox is short of space)" if report.short_of_space else "",
            )
        if report.short_of_space and self.outbox.status().full:
            log.warning(
                "the outbox is full and nothing delivered may be purged yet: scans are "
                "refused until the cloud takes the backlog (or the dedup window passes)"
            )
        return report

    # -- cloud -----------------------------------------------------------------
    def pull_master_data(self, full: bool = False) -> dict[str, int]:
        since = None if full else self.cache.data.cursor
        self.cache.apply(self.client.master_data(since))
        return self.cache.data.counts()

    def heartbeat(self) -> None:
        status = self.outbox.status()
        body = {
            "edge_id": self.config.edge_id,
            "agent_version": __version__,
            "backlog": status.backlog,
            "oldest_pending_at": status.oldest_pending_captured_at.isoformat()
            if status.oldest_pending_captured_at
            else None,
            "parked": status.parked_count,
            "held": status.held_count,
            "last_sync_error": status.last_sync_error,
            "devices": self.device_state(),
        }
        _, self.clock_offset_s = measure_clock(self.client, body)

    # -- running ---------------------------------------------------------------
    def start(self, extra: list[Loop] | None = None) -> None:
        loops = [
            Loop("masterdata", self.config.masterdata_refresh_s, self.pull_master_data),
            Loop("heartbeat", self.config.heartbeat_s, self.heartbeat),
            Loop("sessions", 1.0, self.tick),
            Loop("purge", self.config.purge_every_s, self.purge),
            *(extra or []),
        ]
        self._spawn("sync", lambda: self.syncer.run(self.stop_event))
        for loop in loops:
            self._spawn(loop.name, partial(self._every, loop))

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=f"edge-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _every(self, loop: Loop) -> None:
        while not self.stop_event.is_set():
            try:
                loop.step()
            except CloudError as error:
                log.warning("%s: %s", loop.name, error)
            except Exception:  # a loop must not die of one bad turn; say so loudly
                log.exception("%s failed", loop.name)
            self.stop_event.wait(loop.every_s)

    def stop(self) -> None:
        self.stop_event.set()
        self.syncer.wake.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self.client.close()
        self.outbox.close()
        self.session_store.close()

    def drain(self, timeout_s: float = 60.0) -> bool:
        """Sync until nothing is pending (for the demo and the CLI); True if drained."""
        deadline = self.clock().timestamp() + timeout_s
        while self.outbox.status().backlog:
            report = self.syncer.sync_once()
            if report.error and self.clock().timestamp() + report.wait_s > deadline:
                return False
            if report.error:
                self.stop_event.wait(report.wait_s)
        return True
