"""The process tests/test_outbox.py kills with SIGKILL (EDGE.md scenario 2).

Run as `python -m tests.outbox_crash_worker OUTBOX_PATH ROUND` from the repository root.
It opens the outbox, prints `ready`, then, like a terminal that re-sends what it never
saw acknowledged, re-captures the first messages of the previous round, then captures
in a tight loop. After `capture` returns, and only then, it prints one line per
acknowledged event: `new|dup EVENT_ID SEQ` (flushed). Every 50 captures it plays the
sync loop's part: marks a small batch delivered (writes and WAL checkpoints to be killed
in the middle of too).
"""

import sys
from datetime import UTC, datetime

from edge_agent.outbox import Capture, Outbox, SendResult

RESENT_PER_ROUND = 6
SYNC_EVERY = 50


def capture_for(round_no: int, i: int) -> Capture:
    """The i-th capture of a round; the same (round, i) always gives the same capture
    content, so a re-send matches the stored payload."""
    return Capture(
        type="material_issue",
        payload={"work_order": "WO1", "item": "RAW", "location": "L1", "quantity": str(i % 9 + 1)},
        device_id=f"term-{i % 3}",
        occurred_at=datetime.now(UTC),
        device_seq=i,
        device_msg_id=f"r{round_no}-{i}" if i % 2 == 0 else None,
    )


def acknowledge(outbox: Outbox, c: Capture) -> None:
    captured = outbox.capture(c)
    kind = "dup" if captured.duplicate else "new"
    print(f"{kind} {captured.event_id} {captured.seq}", flush=True)


def main(path: str, round_no: int) -> None:
    outbox = Outbox(
        path, edge_id="edge-1", identity="tenant-1", disk_cap_bytes=1 << 30, agent_version="t"
    )
    print("ready", flush=True)
    if round_no > 0:
        for i in range(0, RESENT_PER_ROUND, 2):
            acknowledge(outbox, capture_for(round_no - 1, i))
    i = 0
    while True:  # until killed
        acknowledge(outbox, capture_for(round_no, i))
        i += 1
        if i % SYNC_EVERY == 0:
            batch = outbox.next_batch(20)
            outbox.record_results(SendResult(ev.event_id, "posted") for ev in batch)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
