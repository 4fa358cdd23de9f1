"""`erp edge run` tells what goes wrong with the sync: each failing answer of a real HTTP
server (500, 503, a proxy's HTML page) or an unreachable cloud is logged with its status,
problem+json code and batch, at most one line a minute after the first, with a count of
those left out, and "sync recovered" once a batch goes through."""

from __future__ import annotations

import json
import logging
import random
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from edge_agent.outbox import Outbox
from edge_agent.sync import Backoff, CloudClient, CloudError, Syncer
from tests.test_edge_sync import outbox_with

Answer = tuple[int, dict[str, str], bytes]


def problem(status: int, code: str, detail: str, **headers: str) -> Answer:
    body = json.dumps({"type": "about:blank", "status": status, "code": code, "detail": detail})
    return status, {"Content-Type": "application/problem+json", **headers}, body.encode()


class ScriptedCloud:
    """A real HTTP server on 127.0.0.1: POST /api/v1/edge/events gets the scripted
    answers in turn, then `posted` for every event it is sent."""

    def __init__(self, script: list[Answer]) -> None:
        self.script = list(script)
        self.requests = 0
        cloud = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                cloud.requests += 1
                if cloud.script:
                    status, headers, content = cloud.script.pop(0)
                else:
                    results = [
                        {"event_id": e["event_id"], "status": "posted"} for e in body["events"]
                    ]
                    status, headers = 200, {"Content-Type": "application/json"}
                    content = json.dumps({"results": results}).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@contextmanager
def scripted_cloud(script: list[Answer]) -> Iterator[ScriptedCloud]:
    cloud = ScriptedCloud(script)
    thread = threading.Thread(target=cloud.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield cloud
    finally:
        cloud.server.shutdown()
        cloud.server.server_close()
        thread.join(timeout=10)


class Ticks:
    """The syncer's monotonic clock, set by the test."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def syncer_for(outbox: Outbox, url: str, ticks: Ticks, batch_size: int = 5) -> Syncer:
    backoff = Backoff(base_s=0.01, cap_s=0.01, rng=random.Random(1))
    client = CloudClient(url, "key", timeout_s=5)
    return Syncer(outbox, client, batch_size=batch_size, backoff=backoff, monotonic=ticks)


def lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "edge_agent.sync"]


def test_failing_answers_are_logged_with_status_code_and_batch_then_recovery(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge_agent.sync")
    outbox = outbox_with(tmp_path, 7)
    boom = problem(500, "internal_error", "something broke")
    script = [boom, boom, boom, problem(503, "maintenance", "back soon", **{"Retry-After": "1"})]
    ticks = Ticks()
    with scripted_cloud(script) as cloud:
        syncer = syncer_for(outbox, cloud.url, ticks)
        for at in (0, 10, 20, 61):  # the retries of a 500 loop, then a 503
            ticks.now = at
            report = syncer.sync_once()
            assert report.error is not None and report.sent == 0
        assert report.wait_s >= 1, "Retry-After honoured"
        ticks.now = 70
        assert syncer.sync_once().sent == 5
        ticks.now = 71
        assert syncer.sync_once().sent == 2
        assert cloud.requests == 6
    assert lines(caplog) == [
        (
            logging.WARNING,
            "sync failed (attempt 1): HTTP 500 internal_error: something broke, "
            "sending batch seq 1-5 (5 event(s))",
        ),
        (
            logging.WARNING,
            "sync failed (attempt 4): HTTP 503 maintenance: back soon, sending batch seq 1-5 "
            "(5 event(s)); 2 more failed attempt(s) not logged since the last line",
        ),
        (
            logging.INFO,
            "sync recovered after 4 failed attempt(s) over 70 s; sent batch seq 1-5 (5 event(s))",
        ),
    ]
    assert outbox.status().backlog == 0
    outbox.close()


def test_a_new_outage_after_recovery_is_logged_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge_agent.sync")
    outbox = outbox_with(tmp_path, 3)
    ticks = Ticks()
    boom = problem(500, "internal_error", "again")
    with scripted_cloud([boom]) as cloud:
        syncer = syncer_for(outbox, cloud.url, ticks, batch_size=1)
        assert syncer.sync_once().error is not None
        ticks.now = 1
        assert syncer.sync_once().sent == 1
        cloud.script.append(boom)
        ticks.now = 2  # within a minute of the last failure line, but a new run
        assert syncer.sync_once().error is not None
    failed = [text for level, text in lines(caplog) if level == logging.WARNING]
    assert len(failed) == 2 and all("attempt 1)" in text for text in failed)
    assert "seq 2-2 (1 event(s))" in failed[1]
    outbox.close()


def test_an_unreachable_cloud_and_a_proxy_page_are_logged_the_same_way(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge_agent.sync")
    outbox = outbox_with(tmp_path, 2)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ticks = Ticks()
    syncer = syncer_for(outbox, f"http://127.0.0.1:{port}", ticks)
    for at in (0, 5, 30, 59.9, 60):
        ticks.now = at
        assert "unreachable" in (syncer.sync_once().error or "")
    html = (200, {"Content-Type": "text/html"}, b"<html>Bad gateway</html>")
    with scripted_cloud([html]) as cloud:
        syncer.client = CloudClient(cloud.url, "key", timeout_s=5)
        ticks.now = 200
        assert "not JSON" in (syncer.sync_once().error or "")
        ticks.now = 201
        assert syncer.sync_once().sent == 2
    texts = [text for _, text in lines(caplog)]
    assert len(texts) == 4, texts
    assert texts[0].startswith("sync failed (attempt 1): cloud unreachable: ConnectError")
    assert texts[0].endswith("sending batch seq 1-2 (2 event(s))")
    assert texts[1].startswith("sync failed (attempt 5): cloud unreachable")
    assert texts[1].endswith("; 3 more failed attempt(s) not logged since the last line")
    assert texts[2].startswith("sync failed (attempt 6): HTTP 200: the answer is not JSON")
    assert texts[3].startswith("sync recovered after 6 failed attempt(s) over 201 s")
    outbox.close()


def test_a_turn_failing_in_an_unforeseen_way_is_logged_and_the_loop_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge_agent.sync")
    outbox = outbox_with(tmp_path, 1)
    stop = threading.Event()

    class Flaky(CloudClient):
        calls = 0

        def post_events(self, events: list[dict[str, Any]]) -> dict[str, Any]:
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise RuntimeError("a bug in a turn")
            stop.set()
            raise CloudError("HTTP 500: still down", status=500)

    syncer = Syncer(
        outbox,
        Flaky("http://127.0.0.1:9", "key"),
        backoff=Backoff(base_s=0.001, cap_s=0.001),
        monotonic=Ticks(),
    )
    syncer.run(stop)  # returns: the first turn's exception did not end the loop
    assert Flaky.calls == 2
    crashed = [r for r in caplog.records if r.getMessage() == "sync turn failed"]
    assert len(crashed) == 1 and crashed[0].exc_info is not None
    assert outbox.status().backlog == 1
    outbox.close()
