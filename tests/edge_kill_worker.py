"""The edge agent in a process of its own, for the SIGKILL test: it opens the outbox
given in the config, logs in at ws-1 and issues one unit per transaction as fast as
it can, printing `ACK n` after each answer the operator would hear as a good beep.
No cloud: the master data comes from the cache file the test wrote."""

import json
import sys

from edge_agent.agent import Agent
from edge_agent.config import parse_config


def main() -> None:
    agent = Agent(parse_config(json.loads(sys.argv[1])))
    for text in ("B-1", "#ISSUE", "WO1"):
        assert agent.scan("ws-1", text).ok
    print("READY", flush=True)
    n = 0
    while True:
        agent.scan("ws-1", "RAW")
        agent.scan("ws-1", "1")
        if agent.scan("ws-1", "#OK").ok:
            n += 1
            print(f"ACK {n}", flush=True)


if __name__ == "__main__":
    main()
