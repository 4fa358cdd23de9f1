"""SAAS.md case 20: bandit finds no high-severity issue in the product's code.

Medium findings reviewed on 2026-11-22: SQL strings in the edge's SQLite modules are
built from constant column lists (values are always bound parameters), and the label
renderer parses SVG it generated itself."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["cloud_api", "edge_agent", "tenant", "firmware_bridges", "web", "bench"]


def test_bandit_finds_no_high_severity_issue() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bandit", "-q", "-r", *PACKAGES, "-lll", "-f", "txt"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
