"""The fault-injection run (loadtests/faults.py), short: a SIGKILL of the server and a database outage
under 8 threads of settles and reversals; nothing acknowledged lost, nothing settled twice or half-written,
and the end state equal to a sequential replay. The full run and its figures: docs/RELIABILITY.md."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from service_helpers import PG_ADMIN, requires_postgres

from loadtests import faults

pytestmark = requires_postgres


def test_a_short_fault_run_loses_nothing(tmp_path: Path) -> None:
    url = f"{PG_ADMIN.rsplit('/', 1)[0]}/settlement_faults_{secrets.token_hex(4)}"
    out = tmp_path / "faults.json"
    status = faults.main(
        ["--database-url", url, "--claims", "400", "--threads", "8", "--kills", "1", "--outages", "1",
         "--outage-seconds", "2", "--persons", "200", "--hot", "10", "--out", str(out)]
    )
    summary = json.loads(out.read_text())
    assert status == 0, summary["problems"]
    assert [e["event"] for e in summary["events"]] == ["SIGKILL", "outage"]
    # the faults met traffic: requests were cut by the kill and refused during the outage
    assert summary["answers"].get("connection lost", 0) > 0 and summary["answers"].get("503", 0) > 0
    assert summary["lost_acknowledged"] == summary["settled_twice"] == summary["half_written"] == 0
    assert summary["acknowledged_settlements"] == 400 and summary["acknowledged_reversals"] > 0
    assert summary["replayed_events"] == 400 + summary["acknowledged_reversals"]
    outage = summary["events"][1]
    assert outage["first_success_after_s"] is not None and outage["first_success_after_s"] < 2.0
