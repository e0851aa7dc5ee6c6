"""Fault injection: settles and reversals under SIGKILLs of the server and database outages.

    .venv/bin/python -m loadtests.faults                      # the full run (docs/RELIABILITY.md)
    .venv/bin/python -m loadtests.faults --claims 600 --kills 1 --outages 1   # a short one

Steps: (1) a fresh PostgreSQL database (``--database-url``, dropped and made
again), its schema, keys, the persons (loadtests.seed), and fee schedules with
small charity pools and per-person caps, so pools run dry and caps bind while
the threads race; (2) ``settlement serve`` on a free loopback port; (3)
``--threads`` clients send every claim until it has a final answer (201, 200
replayed, 409, 422), retrying the same claim — the idempotency key — after a
lost connection or a 503; some claims are then reversed (retried until 200),
some sent again (a replay), some sent again changed (a 409); (4) meanwhile the
server is killed with SIGKILL ``--kills`` times (and started again) and the
database made unavailable ``--outages`` times for ``--outage-seconds``
(``ALTER DATABASE … ALLOW_CONNECTIONS false`` and its backends terminated: that
database only, the server is never stopped); (5) the checks:

- every acknowledged settlement (201 or 200) is stored, with the acknowledged
  settlement id and total; every acknowledged reversal is stored reversed;
- no (hospital id, claim_id) settled twice; no settlement stored that was never
  acknowledged (every claim was retried until answered);
- nothing half-written (loadtests.checks.half_written);
- pools, person-year totals and charity rows equal their ledgers (run_checks);
- the result equals a sequential replay in commit order (sequential_replay).

Exit status 0 when every check holds, 1 otherwise, 2 when the harness could not
run. A JSON summary is printed (and written to ``--out``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

from .checks import half_written, run_checks, sequential_replay
from .common import hospital_ids, hospital_level
from .run import free_port
from .seed import drop_database, libpq_url, seed

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/settlement_faults"
RETRY_SLEEP = 0.2  # seconds a client waits before sending a claim again (the service says Retry-After: 5)

# the shipped 2018 schedule with small pools and caps (as tests/service/test_concurrency.py)
TIGHT = (
    ("annual_pool: 2000000.00", "annual_pool: 30000.00"),
    ("annual_pool: 500000.00", "annual_pool: 8000.00"),
    ("annual_cap_per_person: 10000.00", "annual_cap_per_person: 1500.00"),
    ("annual_cap_per_person: 30000.00", "annual_cap_per_person: 1500.00"),
)


def tight_schedules(tmp: Path) -> Path:
    region = tmp / "heilongjiang"
    shutil.copytree(ROOT / "fee_schedules" / "heilongjiang", region)
    path = region / "2018" / "schedule.yaml"
    text = path.read_text()
    for old, new in TIGHT:
        if old not in text:
            raise SystemExit(f"{path}: {old!r} not found (the shipped schedule changed)")
        text = text.replace(old, new)
    path.write_text(text)
    return region


# -- the database's outages ------------------------------------------------------------------


def _admin(url: str) -> tuple[str, str]:
    parts = urlsplit(libpq_url(url))
    return urlunsplit(parts._replace(path="/postgres")), parts.path.lstrip("/")


def block(url: str) -> int:
    """No new connections to this database and every open one ended; the backends ended."""
    admin, name = _admin(url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')  # type: ignore[arg-type]
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchall()
    return len(rows)


def unblock(url: str) -> None:
    admin, name = _admin(url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')  # type: ignore[arg-type]


# -- the service -------------------------------------------------------------------------------


class Service:
    """``settlement serve`` in its own process group (so SIGKILL reaches every worker)."""

    def __init__(self, env: dict[str, str], port: int, workers: int, log: Path) -> None:
        self.env, self.port, self.workers = env, port, workers
        self.log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120) -> float:
        """Starts it; seconds until /readyz answered 200."""
        start = time.monotonic()
        cmd = [str(Path(sys.executable).parent / "settlement"), "serve", "--host", "127.0.0.1",
               "--port", str(self.port), "--workers", str(self.workers), "--log-level", "warning"]
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        while time.monotonic() - start < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the service exited with status {self.proc.returncode}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    return time.monotonic() - start
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the service was not ready within {timeout:.0f} s")

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


# -- the clients -------------------------------------------------------------------------------


@dataclass
class Op:
    claim: dict[str, Any]
    reverse: bool = False
    again: bool = False  # the same claim once more: a replay
    changed: bool = False  # another claim under the same claim_id: a 409


@dataclass
class Ledger:
    """What the clients were told."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    settled: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)  # → (settlement id, total fen)
    reversed: set[str] = field(default_factory=set)
    statuses: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    successes: list[float] = field(default_factory=list)  # monotonic times of 2xx answers
    slowest_503: float = 0.0  # seconds: the longest a 503 took to come
    done: int = 0


def call(conn_box: list[Any], port: int, method: str, path: str, body: Any, key: str,
         ledger: Ledger, give_up: float = 180.0) -> tuple[int, Any]:
    """The request sent until it has an answer other than 503 (or a lost connection); that answer."""
    payload = json.dumps(body).encode() if body is not None else b""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    start = time.monotonic()
    while time.monotonic() - start < give_up:
        try:
            if conn_box[0] is None:
                conn_box[0] = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            sent = time.monotonic()
            conn_box[0].request(method, path, body=payload, headers=headers)
            response = conn_box[0].getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):  # the server was killed under it
            if conn_box[0] is not None:
                conn_box[0].close()
            conn_box[0] = None
            with ledger.lock:
                ledger.statuses["connection lost"] += 1
            time.sleep(RETRY_SLEEP)
            continue
        took = time.monotonic() - sent
        with ledger.lock:
            ledger.statuses[str(response.status)] += 1
            if response.status == 503:
                ledger.slowest_503 = max(ledger.slowest_503, took)
        if response.status == 503:
            time.sleep(RETRY_SLEEP)
            continue
        if response.status < 300:
            with ledger.lock:
                ledger.successes.append(time.monotonic())
        return response.status, json.loads(data) if data else None
    return 0, None


def client(port: int, ops: list[Op], keys: dict[str, str], ledger: Ledger) -> None:
    box: list[Any] = [None]
    for op in ops:
        claim = op.claim
        hid, cid = claim["hospital"]["id"], claim["claim_id"]
        key = keys[hid]
        status, body = call(box, port, "POST", "/v1/settlements", claim, key, ledger)
        if status in (200, 201):
            got = (body["settlement_id"], _fen(body["amounts"]["total"]))
            with ledger.lock:
                before = ledger.settled.setdefault((hid, cid), got)
                if before[0] != got[0]:
                    ledger.problems.append(f"{hid}/{cid}: acknowledged as {before[0]} and as {got[0]}")
            if op.again:
                status2, body2 = call(box, port, "POST", "/v1/settlements", claim, key, ledger)
                if status2 != 200 or body2["settlement_id"] != got[0]:
                    with ledger.lock:
                        ledger.problems.append(f"{hid}/{cid}: sent again, answered {status2}")
            if op.changed:
                other = {**claim, "items": [*claim["items"], dict(claim["items"][0], quantity=1)]}
                status2, body2 = call(box, port, "POST", "/v1/settlements", other, key, ledger)
                if status2 != 409:
                    with ledger.lock:
                        ledger.problems.append(f"{hid}/{cid}: another claim under its id answered {status2}")
            if op.reverse:
                status2, body2 = call(box, port, "POST", f"/v1/settlements/{got[0]}/reversal", None, key, ledger)
                if status2 == 200 and body2["status"] == "reversed":
                    with ledger.lock:
                        ledger.reversed.add(got[0])
                else:
                    with ledger.lock:
                        ledger.problems.append(f"{hid}/{cid}: reversal answered {status2}")
        elif status != 422:
            with ledger.lock:
                ledger.problems.append(f"{hid}/{cid}: settle answered {status}: {str(body)[:200]}")
        with ledger.lock:
            ledger.done += 1


# -- the run -----------------------------------------------------------------------------------


def operations(n: int, tables: Any, persons: list[Any], hot: list[Any], hospitals: list[str], seed_: int) -> list[Op]:
    from settlement.synth import claim_dicts

    rng = random.Random(seed_)
    # a third of the claims for a few persons: their totals, caps and the pools race
    people = persons + hot * max(1, len(persons) // (2 * max(1, len(hot))))
    ops = []
    for claim in claim_dicts(n, people, tables, seed=seed_, year=2018, hospitals=len(hospitals)):
        claim["hospital"]["level"] = hospital_level(claim["hospital"]["id"])
        roll = rng.random()
        ops.append(Op(claim, reverse=roll < 0.10, again=0.10 <= roll < 0.14, changed=0.14 <= roll < 0.16))
    return ops


def chaos(plan: list[str], total: int, ledger: Ledger, service: Service, url: str, outage_s: float,
          report: list[dict[str, Any]]) -> None:
    """Each event of ``plan`` when its share of the claims is done: a SIGKILL (then a start) or an outage."""
    for k, event in enumerate(plan, start=1):
        while ledger.done < total * k / (len(plan) + 1):
            time.sleep(0.05)
        at = time.monotonic()
        if event == "kill":
            service.kill()
            ready = service.start()
            report.append({"event": "SIGKILL", "at_done": ledger.done, "ready_after_s": round(ready, 2)})
        else:
            ended = block(url)
            time.sleep(outage_s)
            unblock(url)
            back = time.monotonic()
            while True:  # the first success any client had after the database was back
                with ledger.lock:
                    after = [t for t in ledger.successes[-200:] if t >= back]
                if after or time.monotonic() - back > 60:
                    break
                time.sleep(0.01)
            report.append({
                "event": "outage", "at_done": ledger.done, "backends_ended": ended, "seconds": outage_s,
                "first_success_after_s": round(min(after) - back, 3) if after else None,
                "took_s": round(back - at, 2),
            })


def interleave(kills: int, outages: int) -> list[str]:
    """kill, outage, kill, outage, …, then the rest of the more numerous kind."""
    plan: list[str] = []
    for k in range(max(kills, outages)):
        plan += (["kill"] if k < kills else []) + (["outage"] if k < outages else [])
    return plan


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--database-url", default=DEFAULT_DB, help="dropped and created again (default %(default)s)")
    p.add_argument("--claims", type=int, default=20_000)
    p.add_argument("--threads", type=int, default=16)
    p.add_argument("--kills", type=int, default=5)
    p.add_argument("--outages", type=int, default=3)
    p.add_argument("--outage-seconds", type=float, default=3.0)
    p.add_argument("--persons", type=int, default=2000)
    p.add_argument("--hot", type=int, default=20, help="persons who get a third of the claims")
    p.add_argument("--hospitals", type=int, default=8)
    p.add_argument("--workers", type=int, default=1, help="settlement serve --workers")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", type=Path, default=None, help="write the JSON summary here too")
    p.add_argument("--keep", action="store_true", help="keep the database afterwards")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from settlement.engine import compile_tables
    from settlement.schedules import load_region

    from .common import build_persons, pick_hot

    tmp = Path(tempfile.mkdtemp(prefix="faults-"))
    url = args.database_url
    schedules = tight_schedules(tmp)
    hospitals = hospital_ids(args.hospitals)
    try:
        config = seed(url, persons=args.persons, hospitals=args.hospitals, population_seed=args.seed,
                      hot_persons=args.hot, out=tmp / "world.json")
    except Exception as exc:  # no database server, no rights
        print(f"faults: could not prepare the database: {exc}", file=sys.stderr)
        return 2
    tables = compile_tables(load_region(schedules))
    persons = build_persons(args.persons, args.seed)
    ops = operations(args.claims, tables, persons, pick_hot(persons, args.hot, args.seed), hospitals, args.seed)
    port = free_port()
    env = {**os.environ, "SETTLEMENT_DATABASE_URL": url, "SETTLEMENT_SCHEDULES": str(schedules)}
    service = Service(env, port, args.workers, tmp / "serve.log")
    ledger = Ledger()
    events: list[dict[str, Any]] = []
    plan = interleave(args.kills, args.outages)
    try:
        service.start()
        started = time.monotonic()
        shares = [ops[k :: args.threads] for k in range(args.threads)]
        threads = [threading.Thread(target=client, args=(port, share, config["hospital_keys"], ledger))
                   for share in shares]
        monkey = threading.Thread(target=chaos, args=(plan, len(ops), ledger, service, url, args.outage_seconds,
                                                      events))
        for t in [*threads, monkey]:
            t.start()
        for t in [*threads, monkey]:
            t.join()
        elapsed = time.monotonic() - started
    except Exception as exc:
        print(f"faults: the harness failed: {exc}; service log {tmp / 'serve.log'}", file=sys.stderr)
        service.stop()
        return 2
    service.stop()

    # -- the checks ---------------------------------------------------------------------------
    problems = list(ledger.problems)
    prefix = f"S2018-{args.seed}-"
    with psycopg.connect(libpq_url(url)) as conn:
        stored = {
            (h, c): (sid, status, total)
            for h, c, sid, status, total in conn.execute(
                "SELECT hospital_id, claim_id, settlement_id, status, total_fen FROM settlements")
        }
    lost = [k for k, (sid, total) in ledger.settled.items() if k not in stored or stored[k][0] != sid]
    wrong_total = [k for k, (sid, total) in ledger.settled.items()
                   if k in stored and total != stored[k][2]]
    unacknowledged = [k for k in stored if k not in ledger.settled]
    reversals_lost = [sid for sid in ledger.reversed
                      if not any(s == sid and status == "reversed" for s, status, _ in stored.values())]
    problems += [f"acknowledged settlement lost: {k}" for k in lost]
    problems += [f"acknowledged total differs: {k}" for k in wrong_total]
    problems += [f"stored but never acknowledged: {k}" for k in unacknowledged]
    problems += [f"acknowledged reversal lost: {sid}" for sid in reversals_lost]
    halves = half_written(url)
    problems += [f"half-written: {h}" for h in halves]
    sent = len({(o.claim["hospital"]["id"], o.claim["claim_id"]) for o in ops})
    totals = run_checks(url, prefix, settle_sent=sent, schedules=schedules)
    problems += totals["problems"]
    replay = sequential_replay(url, tables)
    problems += replay["problems"]
    summary = {
        "claims": len(ops), "threads": args.threads, "workers": args.workers, "seconds": round(elapsed, 1),
        "acknowledged_settlements": len(ledger.settled), "acknowledged_reversals": len(ledger.reversed),
        "answers": dict(sorted(ledger.statuses.items())), "slowest_503_s": round(ledger.slowest_503, 3),
        "events": events,
        "lost_acknowledged": len(lost) + len(reversals_lost), "settled_twice": totals["double_settlements"],
        "half_written": len(halves), "replayed_events": replay["events"],
        "pools": [p for p in totals["pools"] if p["policy_year"] == 2018],
        "problems": problems[:50], "problem_count": len(problems),
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    text = json.dumps(summary, indent=1)
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    if not args.keep:
        drop_database(url)
    shutil.rmtree(tmp, ignore_errors=True)
    return 1 if problems else 0


def _fen(yuan: str) -> int:
    whole, _, frac = yuan.partition(".")
    sign = -1 if whole.startswith("-") else 1
    return sign * (abs(int(whole)) * 100 + int(frac or 0))


if __name__ == "__main__":
    sys.exit(main())
