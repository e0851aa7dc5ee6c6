"""Counter load: hospitals settling, previewing, reversing and retrying claims.

Run it through the driver (``loadtests/run.sh``), which seeds the database and
sets the environment read here:

- ``LOADTEST_SEED``      the seed file written by ``loadtests.seed`` (persons, keys)
- ``LOADTEST_RATE``      offered requests per second, all users together
- ``LOADTEST_USERS``     how many users the run starts (``-u``): each paces itself
- ``LOADTEST_MIX``       ``counter`` (settle 70 %, preview 20 %, reversal 5 %, retry 5 %),
                         ``preview`` (previews only) or ``settle`` (settlements only)
- ``LOADTEST_OUT``       folder for the exact per-request latencies (one file per process)
- ``LOADTEST_RUN``       a run id, part of every claim id (claims of earlier runs never clash)
- ``LOADTEST_YEAR``      discharge year of the claims (default 2019)
- ``LOADTEST_HOT_SHARE`` share of claims for a few "hot" persons (default 0.03)
- ``LOADTEST_EMERGENCY_SHARE`` share of emergency claims (default 0.02): half of an unidentified
  patient (no registry entry), half of a patient unable to pay; they draw on the emergency relief
  pool, which the counter settles the locked way

Open loop. Each user sends on a fixed schedule (``interval = users / rate``,
random phase) instead of "think time after the answer": when an answer is
slow the user does not wait longer, it fires the overdue requests back to
back, so the offered rate holds and a stall shows up as latency instead of
as fewer requests (coordinated omission). Every request records two times:
``service`` (sent → answered, what locust reports) and ``corrected``
(scheduled → answered, including the wait for an overdue slot). Both are kept
exactly (not bucketed) and written per process for the report.
"""

from __future__ import annotations

import collections
import gc
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import gevent
import orjson
from locust import FastHttpUser, events, task
from locust.runners import MasterRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: loadtests.common

MIXES: dict[str, dict[str, float]] = {
    "counter": {"settle": 0.70, "preview": 0.20, "reversal": 0.05, "retry": 0.05},
    "preview": {"preview": 1.0},
    "settle": {"settle": 1.0},
}

RATE = float(os.environ.get("LOADTEST_RATE", "20"))
USERS = max(1, int(os.environ.get("LOADTEST_USERS", "4")))
MIX = MIXES[os.environ.get("LOADTEST_MIX", "counter")]
RUN = os.environ.get("LOADTEST_RUN", str(int(time.time())))
YEAR = int(os.environ.get("LOADTEST_YEAR", "2019"))
HOT_SHARE = float(os.environ.get("LOADTEST_HOT_SHARE", "0.03"))
TEMPLATES = int(os.environ.get("LOADTEST_TEMPLATES", "10000"))
EMERGENCY_SHARE = float(os.environ.get("LOADTEST_EMERGENCY_SHARE", "0.02"))


def as_emergency(claim: dict[str, Any], n: int, unidentified: bool) -> None:
    """The claim made an emergency (疾病应急救助): of an unidentified patient, or of one unable to pay."""
    claim["visit"]["emergency"] = True
    if unidentified:
        claim["patient"] = {"unidentified": True, "temporary_id": f"T{RUN}-{os.getpid()}-{n}"}
    else:
        claim["patient"]["unable_to_pay"] = True


class Claims:
    """Claim bodies built from pre-generated templates; a fresh claim id for every request."""

    def __init__(self, seed_file: str) -> None:
        from loadtests.common import hospital_level, load_world
        from settlement.engine import compile_tables
        from settlement.schedules import load_region
        from settlement.service.config import bundled_schedules
        from settlement.synth import claim_dicts

        world = load_world(seed_file)
        tables = compile_tables(load_region(bundled_schedules()))
        hot = int(TEMPLATES * HOT_SHARE) if world.hot else 0
        pid = os.getpid()
        claims = list(claim_dicts(TEMPLATES - hot, world.persons, tables, seed=pid, year=YEAR, with_identity=False))
        claims += claim_dicts(hot, world.hot, tables, seed=pid + 1, year=YEAR, with_identity=False)
        random.Random(pid).shuffle(claims)
        emergencies = int(len(claims) * EMERGENCY_SHARE)
        for n, claim in enumerate(claims[:emergencies]):
            as_emergency(claim, n, unidentified=n % 2 == 0)
        random.Random(pid + 3).shuffle(claims)
        self.suffixes: list[bytes] = []
        for claim in claims:
            rest = {k: v for k, v in claim.items() if k not in ("claim_id", "hospital")}
            self.suffixes.append(orjson.dumps(rest)[1:])  # '"patient":…}' without the opening brace
        self.keys = world.hospitals
        self.hospitals = sorted(world.hospitals)
        self.level = {h: hospital_level(h) for h in self.hospitals}
        self.rng = random.Random(pid + 2)

    def body(self, hospital: str, claim_id: str) -> bytes:
        head = f'{{"claim_id":"{claim_id}","hospital":{{"id":"{hospital}","level":{self.level[hospital]}}},'
        return head.encode() + self.rng.choice(self.suffixes)


CLAIMS: Claims | None = None
RECORDS: dict[str, list[tuple[float, float, float, bool]]] = collections.defaultdict(list)
"""type → (answered at (epoch s), service ms, corrected ms, ok) of every request of this process."""
COUNTS: collections.Counter[str] = collections.Counter()
"""settle_sent (distinct new claims sent to settle), created, replayed, double_settlement, …"""
PROBLEMS: list[str] = []


@events.init.add_listener
def _load(environment: Any, **_kw: Any) -> None:
    global CLAIMS
    if isinstance(environment.runner, MasterRunner):
        return
    CLAIMS = Claims(os.environ["LOADTEST_SEED"])
    # The claims and population above live as long as the process. Left in the collector's oldest
    # generation, each full collection during the load walked all of them (36-50 ms): every
    # request in flight then looked 40 ms slower, the service's p99 spikes that were locust's own
    # (docs/PERFORMANCE.md §3, session 4). Frozen, a full collection walks only what requests made.
    gc.collect()
    gc.freeze()


@events.test_stop.add_listener
def _dump(environment: Any, **_kw: Any) -> None:
    if isinstance(environment.runner, MasterRunner) or not os.environ.get("LOADTEST_OUT"):
        return
    out = Path(os.environ["LOADTEST_OUT"])
    out.mkdir(parents=True, exist_ok=True)
    data = {
        "pid": os.getpid(),
        "records": {k: v for k, v in RECORDS.items()},
        "counts": dict(COUNTS),
        "problems": PROBLEMS[:200],
    }
    (out / f"client-{os.getpid()}.json").write_bytes(orjson.dumps(data))


_user_seq = 0


class CounterUser(FastHttpUser):
    """One billing counter of one hospital, with that hospital's key."""

    network_timeout = 30.0
    connection_timeout = 10.0

    def on_start(self) -> None:
        global _user_seq
        assert CLAIMS is not None
        _user_seq += 1
        self.number = _user_seq
        self.hospital = CLAIMS.hospitals[(os.getpid() * 7 + self.number) % len(CLAIMS.hospitals)]
        self.headers = {
            "Authorization": f"Bearer {CLAIMS.keys[self.hospital]}",
            "Content-Type": "application/json",
        }
        # a billing counter sends no cookies and the service sets none: skip the cookie jar on every
        # request (~5 % of locust's CPU, py-spy)
        self.client.client.cookiejar = None
        self.prefix = f"LT{RUN}-{os.getpid()}-{self.number}-"
        self.count = 0
        self.recent: collections.deque[tuple[str, bytes]] = collections.deque(maxlen=50)
        self.kinds = list(MIX)
        self.weights = list(MIX.values())
        self.interval = USERS / RATE
        self.next_at = time.time() + random.uniform(0, self.interval)
        gevent.sleep(max(0.0, self.next_at - time.time()))

    def wait_time(self) -> float:
        self.next_at += self.interval
        return max(0.0, self.next_at - time.time())

    def _record(self, kind: str, started: float, ok: bool) -> None:
        now = time.time()
        RECORDS[kind].append((now, (now - started) * 1000.0, (now - self.next_at) * 1000.0, ok))

    def _new_claim(self) -> tuple[str, bytes]:
        assert CLAIMS is not None
        self.count += 1
        claim_id = f"{self.prefix}{self.count}"
        return claim_id, CLAIMS.body(self.hospital, claim_id)

    @task
    def counter(self) -> None:
        kind = random.choices(self.kinds, self.weights)[0]
        if kind in ("reversal", "retry") and not self.recent:
            kind = "settle"
        getattr(self, kind)()

    def settle(self) -> None:
        _claim_id, body = self._new_claim()
        COUNTS["settle_sent"] += 1
        started = time.time()
        ok = False
        with self.client.post(
            "/v1/settlements", data=body, headers=self.headers, name="settle", catch_response=True
        ) as resp:
            if resp.status_code == 201:
                settlement_id = orjson.loads(resp.content)["settlement_id"]
                self.recent.append((settlement_id, body))
                COUNTS["created"] += 1
                resp.success()
                ok = True
            else:
                resp.failure(f"settle {resp.status_code}: {(resp.text or '')[:300]}")
        self._record("settle", started, ok)

    def preview(self) -> None:
        _claim_id, body = self._new_claim()
        started = time.time()
        ok = False
        with self.client.post(
            "/v1/settlements/preview", data=body, headers=self.headers, name="preview", catch_response=True
        ) as resp:
            if resp.status_code == 200 and resp.content.startswith(b'{"settlement_id":null'):
                resp.success()
                ok = True
            elif resp.status_code == 200:
                ok = orjson.loads(resp.content).get("status") == "preview"
                if ok:
                    resp.success()
                else:
                    resp.failure("preview answered with a stored settlement")
            else:
                resp.failure(f"preview {resp.status_code}: {(resp.text or '')[:300]}")
        self._record("preview", started, ok)

    def reversal(self) -> None:
        settlement_id, _body = self.recent.pop()
        started = time.time()
        ok = False
        with self.client.post(
            f"/v1/settlements/{settlement_id}/reversal",
            data=b"{}",
            headers=self.headers,
            name="reversal",
            catch_response=True,
        ) as resp:
            if resp.status_code == 200 and orjson.loads(resp.content).get("status") == "reversed":
                COUNTS["reversed"] += 1
                resp.success()
                ok = True
            else:
                resp.failure(f"reversal {resp.status_code}: {(resp.text or '')[:300]}")
        self._record("reversal", started, ok)

    def retry(self) -> None:
        """The counter sends a settled claim again (a timeout, a double click): it must replay."""
        settlement_id, body = random.choice(self.recent)
        started = time.time()
        ok = False
        with self.client.post(
            "/v1/settlements", data=body, headers=self.headers, name="retry", catch_response=True
        ) as resp:
            if resp.status_code == 200:
                replayed = orjson.loads(resp.content).get("settlement_id")
                if replayed == settlement_id and resp.headers.get("Idempotent-Replayed") == "true":
                    COUNTS["replayed"] += 1
                    resp.success()
                    ok = True
                else:
                    COUNTS["double_settlement"] += 1
                    PROBLEMS.append(f"retry of {settlement_id} answered {replayed}")
                    resp.failure(f"retry of {settlement_id} answered settlement {replayed}")
            elif resp.status_code == 201:
                COUNTS["double_settlement"] += 1
                PROBLEMS.append(f"retry of {settlement_id} settled again: {resp.text[:200]}")
                resp.failure("retry settled the claim a second time")
            else:
                resp.failure(f"retry {resp.status_code}: {(resp.text or '')[:300]}")
        self._record("retry", started, ok)
