"""A real cloud (uvicorn on a loopback port, stoppable and restartable) and edge agents
wired to it, for the edge's acceptance scenarios."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy import Engine, select

from cloud_api.db.models import EdgeEvent
from cloud_api.settings import get_settings
from edge_agent.agent import Agent
from edge_agent.config import parse_config
from erp.app import create_app
from tests.conftest import Api
from tests.roles import app_engines


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class CloudServer:
    """The cloud API served over HTTP on 127.0.0.1; `stop()` is an outage."""

    def __init__(self, db: Engine) -> None:
        self.app = create_app(get_settings(), *app_engines(db))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the cloud API did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
            self._server = None


@contextmanager
def cloud(db: Engine) -> Iterator[CloudServer]:
    server = CloudServer(db)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def edge_config(
    tmp: Path, url: str, api_key: str, *, edge_id: str = "edge-1", **edge: Any
) -> dict[str, Any]:
    return {
        "edge": {
            "id": edge_id,
            "outbox": str(tmp / f"{edge_id}.sqlite3"),
            "masterdata": str(tmp / f"{edge_id}-md.json"),
            "min_free_mb": 0,
            **edge,
        },
        "cloud": {"url": url, "api_key": api_key, "batch_size": 200},
        "workstations": [
            {"id": "ws-1", "warehouse": "WH", "work_center": "WC", "supplier": "SUP"},
            {"id": "hh-1", "warehouse": "WH", "supplier": "SUP", "mode": "receive"},
        ],
    }


def make_agent(tmp: Path, server: CloudServer, api: Api, **edge: Any) -> Agent:
    config = parse_config(edge_config(tmp, server.url, api.tenant.api_key, **edge))
    agent = Agent(config)
    agent.pull_master_data(full=True)
    return agent


def login_and_issue(agent: Agent, item: str, qty: str, wo: str = "WO1") -> None:
    """The operator's scans for one issue at ws-1, each answered well."""
    for scan in ("B-1", "#ISSUE", wo, item, qty, "#OK"):
        answer = agent.scan("ws-1", scan)
        assert answer.ok, (scan, answer)


def issue_scans(agent: Agent, item: str, qty: str, count: int) -> int:
    """After a login at a work order: `count` issues of one item; answers how many
    were acknowledged."""
    acked = 0
    for _ in range(count):
        agent.scan("ws-1", item)
        agent.scan("ws-1", qty)
        if agent.scan("ws-1", "#OK").ok:
            acked += 1
    return acked


def posted_events(db: Engine, tenant_id: Any, device_id: str = "scanner-ws-1") -> list[Any]:
    ev = EdgeEvent.__table__  # type: ignore[attr-defined]
    with db.connect() as conn:
        return list(
            conn.execute(
                select(ev.c.event_id, ev.c.seq, ev.c.status, ev.c.occurred_at)
                .where(ev.c.tenant_id == tenant_id, ev.c.device_id == device_id)
                .order_by(ev.c.seq)
            )
        )


def on_hand(api: Api, item: str, location: str = "WH") -> Decimal:
    rows = api.get("/reports/stock").json()
    return sum(
        (Decimal(r["quantity"]) for r in rows if r["item"] == item and r["location"] == location),
        Decimal(0),
    )
