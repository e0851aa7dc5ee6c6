"""CI smoke run of the load-test harness: it starts, loads, checks and reports.

A tiny rate for ~10 s against a service it starts itself on PostgreSQL (a
database of its own, dropped afterwards). Nothing about timing is asserted:
only that every request succeeded, no claim was settled twice, and every pool
and accumulator equals its ledger (the harness's own exit status and report).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVER = os.environ.get("LOADTEST_PG", "postgresql://postgres@127.0.0.1:5432")


def _postgres_reachable() -> str | None:
    try:
        import psycopg

        with psycopg.connect(f"{SERVER}/postgres", connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return f"PostgreSQL at {SERVER} is unreachable: {exc}"
    return None


def test_smoke_run(tmp_path: Path) -> None:
    reason = _postgres_reachable()
    if reason:
        pytest.skip(reason)
    database = f"settlement_lt_{uuid.uuid4().hex[:10]}"
    out = tmp_path / "report"
    proc = subprocess.run(
        [
            sys.executable, "-m", "loadtests.run",
            "--duration", "10", "--rate", "8", "--users", "4",
            "--persons", "2000", "--hospitals", "3", "--hot-persons", "3", "--hot-share", "0.2",
            "--workers", "1", "--warmup", "0",
            "--database-url", f"{SERVER}/{database}", "--out", str(out),
        ],
        cwd=ROOT,
        # a larger share of emergency claims than a real run's, so the short run draws on that pool
        env=dict(os.environ, LOADTEST_TEMPLATES="500", LOADTEST_EMERGENCY_SHARE="0.2"),
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["failures"] == []
    client = report["client"]
    assert client["settle"]["ok"] > 0 and client["settle"]["errors"] == 0
    assert sum(e["errors"] for k, e in client.items() if k != "all") == 0
    assert report["counts"].get("double_settlement", 0) == 0
    assert report["checks"]["double_settlements"] == 0
    assert report["checks"]["problems"] == []
    assert report["server"], "the /metrics histogram was read"
    assert all(ms > 0 for ms in report["run"]["cpu"]["reference_loop_ms"]), "the machine's speed was taken"
    assert (out / "report.md").read_text().count("PASS") == 1
