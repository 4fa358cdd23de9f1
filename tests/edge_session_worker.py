"""The edge agent in a process of its own, for the session-restart test: it opens the
outbox given in the config, logs in at ws-1, scans the work order and the item, prints
`READY` and waits to be killed (SIGKILL: no `stop()`, no clean close). No cloud: the
master data come from the cache file the test wrote."""

import json
import sys
import threading

from edge_agent.agent import Agent
from edge_agent.config import parse_config


def main() -> None:
    agent = Agent(parse_config(json.loads(sys.argv[1])))
    for text in ("B-1", "#ISSUE", "WO1", "RAW"):
        assert agent.scan("ws-1", text).ok, text
    print("READY", flush=True)
    threading.Event().wait()  # until killed


if __name__ == "__main__":
    main()
