"""`audit --engine dask` against the sequential `audit`, on PostgreSQL, where the pools run dry.

A database is filled directly (COPY, foreign keys off) with claims settled once in order by the batch
engine under a region whose charity pools run dry: its stored rows are then right, and both audits must
find nothing. Then reversals are added between the claims (the stored amounts of later claims are no
longer what a replay gives) and rows are corrupted: both audits must print the same differences, in the
same order, and exit alike. One LocalCluster(n_workers=2, threads_per_worker=1) for the module.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from settlement.audit import AMOUNTS, audit
from settlement.batchrun import StreamSettler, prepare_chunk
from settlement.cli import main
from settlement.engine import Tables
from settlement.engine.batch import PERSON_COLUMNS
from settlement.service.config import Settings
from settlement.service.db import make_engine
from settlement.service.migrate import upgrade

from .helpers import claims, make_region, tables_of

distributed = pytest.importorskip("distributed")
psycopg = pytest.importorskip("psycopg")

ADMIN = os.environ.get("SETTLEMENT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
TZ = ZoneInfo("Asia/Shanghai")
AT = dt.datetime(2026, 11, 1, 8, tzinfo=dt.UTC)




@pytest.fixture
def database() -> Iterator[str]:
    try:
        admin = psycopg.connect(ADMIN, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {ADMIN}: {exc}")
    name = f"settlement_test_dask_audit_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{ADMIN.rsplit('/', 1)[0]}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def fill(url: str, region: Path, tables: Tables, rows: list[dict[str, Any]], reverse: dict[int, int]) -> None:
    """Stores `rows` settled in order (the batch engine's results), and after claim k a reversal of claim
    reverse[k] (an event and the status; nothing else changes)."""
    upgrade(Settings(database_url=url, schedules=region))
    settler = StreamSettler(tables)
    chunk = prepare_chunk([orjson.dumps(r) for r in rows], tables)
    assert not chunk.errors and chunk.batch is not None
    version = chunk.batch.version.tolist()
    result = settler.settle_chunk(chunk)
    assert result is not None and not result.error.any()
    columns = [getattr(result, a).tolist() for a in AMOUNTS]
    fixed = result.pathway_fixed.tolist()
    versions = [v.id for v in tables.schedules.versions]
    reversed_ = set(reverse.values())
    with psycopg.connect(url) as pg:
        pg.execute("SET session_replication_role = replica")
        with pg.cursor() as cur:
            with cur.copy(
                "COPY settlements (seq, settlement_id, hospital_id, claim_id, claim_hash, request_body, key_id,"
                " status, settled_at, person_id, scheme, category, visit_type, admitted, discharged, policy_year,"
                " schedule_version, pathway, disease_group, "
                + ", ".join(f"{a}_fen" for a in AMOUNTS)
                + ", result, trace, accumulators_after, contribution) FROM STDIN"
            ) as copy:
                for i, c in enumerate(rows):
                    visit = c["visit"]
                    copy.write_row(
                        (
                            i + 1,
                            str(uuid.UUID(int=i + 1)),
                            c["hospital"]["id"],
                            c["claim_id"],
                            "0" * 64,
                            orjson.dumps(c).decode(),
                            "test",
                            "reversed" if i in reversed_ else "settled",
                            AT,
                            c["patient"]["person_id"],
                            c["patient"]["scheme"],
                            c["patient"]["category"],
                            visit["type"],
                            visit["admitted"],
                            visit["discharged"],
                            int(c["visit"]["discharged"][:4]),
                            versions[version[i]],
                            "single_disease" if fixed[i] else "standard",
                            None,
                            *(col[i] for col in columns),
                            "{}",
                            "[]",
                            "{}",
                            "{}",
                        )
                    )
            with cur.copy("COPY settlement_events (seq, settlement_seq, kind, at, key_id) FROM STDIN") as copy:
                seq = 0
                for i in range(len(rows)):
                    seq += 1
                    copy.write_row((seq, i + 1, "settled", AT, "test"))
                    if i in reverse:
                        seq += 1
                        copy.write_row((seq, reverse[i] + 1, "reversed", AT + dt.timedelta(days=1), "test"))
            acc = settler.accumulators
            assert acc.person is not None
            funds = list(tables.schedules.fund_ids)
            with cur.copy(
                "COPY person_year_accumulators (person_id, policy_year, basic_paid_inpatient, basic_paid_outpatient,"
                " basic_paid_chronic_outpatient, critical_base, critical_paid, assistance_base, assistance_paid)"
                " FROM STDIN"
            ) as copy:
                for (person, year), r in settler.person_rows.items():
                    copy.write_row((person, year, *acc.person[r, :PERSON_COLUMNS].tolist()))
            with cur.copy("COPY person_year_charity (person_id, policy_year, fund_id, paid) FROM STDIN") as copy:
                for (person, year), r in settler.person_rows.items():
                    for j, fund in enumerate(funds):
                        if acc.charity_paid[r, j]:
                            copy.write_row((person, year, fund, int(acc.charity_paid[r, j])))
            with cur.copy("COPY fund_pools (fund_id, policy_year, shard, used) FROM STDIN") as copy:
                for year, r in settler.year_rows.items():
                    for j, fund in enumerate(funds):
                        copy.write_row((fund, year, 0, int(acc.pool_used[r, j])))
                    copy.write_row(("emergency_relief", year, 0, int(acc.pool_used[r, -1])))
        pg.commit()


def both(client: Any, url: str, region: Path, tables: Tables, **kw: Any) -> tuple[Any, Any]:
    from settlement.distributed.audit import audit_on_cluster

    engine = make_engine(Settings(database_url=url, schedules=region), pooled=False)
    try:
        sequential = audit(engine, tables, TZ, kw.get("start"), kw.get("end"))
        dask = audit_on_cluster(client, engine, tables, TZ, kw.get("start"), kw.get("end"), kw.get("parts", 3))
    finally:
        engine.dispose()
    assert dask.differences == sequential.differences
    assert (dask.settled, dask.reversals) == (sequential.settled, sequential.reversals)
    return sequential, dask


@pytest.fixture
def scenario(tmp_path: Path) -> tuple[Path, Tables, list[dict[str, Any]]]:
    region = make_region(tmp_path, {("2018", "poverty_relief"): "3000.00", ("2019", "poverty_relief"): "20000.00"})
    tables = tables_of(region)
    return region, tables, claims(tables, 900, 120, seed=5)


def test_clean_database_where_pools_run_dry(client: Any, database: str, scenario: Any) -> None:
    region, tables, rows = scenario
    fill(database, region, tables, rows, {})
    sequential, dask = both(client, database, region, tables)
    assert sequential.differences == [] and sequential.settled == len(rows)
    assert dask.rounds >= 3  # unlimited, the pools' views, a confirmation: the pool did run dry
    with psycopg.connect(database) as pg:  # the pool really ran dry (else this would prove little)
        used = pg.execute("SELECT used FROM fund_pools WHERE fund_id = 'poverty_relief' AND policy_year = 2018")
        assert used.fetchone() == (300_000,)


def test_reversals_and_corruptions_same_differences(
    client: Any, database: str, scenario: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    region, tables, rows = scenario
    fill(database, region, tables, rows, {40: 3, 41: 12, 300: 299, 500: 100, 700: 650})
    with psycopg.connect(database) as pg:
        pg.execute(
            "UPDATE settlements SET basic_fen = basic_fen + 1, patient_pays_fen = patient_pays_fen - 1"
            " WHERE seq = 77 AND patient_pays_fen > 0"
        )
        pg.execute("UPDATE settlements SET schedule_version = 'elsewhere' WHERE seq = 410")
        pg.execute('UPDATE settlements SET request_body = \'{"claim_id": "broken"}\' WHERE seq = 555')
        pg.execute("UPDATE fund_pools SET used = used + 5 WHERE fund_id = 'poverty_relief' AND policy_year = 2019")
        pg.execute(
            "UPDATE person_year_accumulators SET critical_base = critical_base + 100"
            " WHERE person_id = (SELECT person_id FROM settlements WHERE seq = 800)"
        )
    sequential, _ = both(client, database, region, tables)
    texts = "\n".join(sequential.differences)
    for planted in (
        str(uuid.UUID(int=77)),
        "stored elsewhere/",
        "cannot be settled again",
        "pool poverty_relief 2019",
        "critical_base stored",
    ):
        assert planted in texts
    assert len(sequential.differences) > 10  # the reversals changed later claims' amounts too
    both(client, database, region, tables, start=AT.astimezone(TZ).date() + dt.timedelta(days=1))  # from: totals only
    both(client, database, region, tables, end=AT.astimezone(TZ).date(), parts=2)  # to: before the reversals

    monkeypatch.setenv("SETTLEMENT_DATABASE_URL", database)
    monkeypatch.setenv("SETTLEMENT_SCHEDULES", str(region))
    assert main(["audit"]) == 1
    local = capsys.readouterr()
    assert main(["audit", "--engine", "dask", "--scheduler", client.scheduler.address, "--partitions", "3"]) == 1
    dask = capsys.readouterr()
    assert dask.out == local.out
    assert local.err.split(" in ")[0] == dask.err.splitlines()[-1].split(" in ")[0]
