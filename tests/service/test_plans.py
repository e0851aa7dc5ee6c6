"""The claim lookups' plans do not depend on the statistics (migration 0003): they can only use the
unique (hospital_id, claim_id) index; the hospital listing can still use its own index."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from service_helpers import requires_postgres

from settlement.service.settlements import pgcounter

pytestmark = requires_postgres

LISTING = "ix_settlements_hospital_id_seq"
UNIQUE = "uq_settlements_hospital_id_claim_id"


@pytest.fixture
def pg(settings: Any) -> Any:
    url = settings.sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn


def _plan(pg: Any, sql: str, *types: str) -> str:
    pg.execute("DEALLOCATE ALL")
    pg.execute(f"PREPARE q ({', '.join(types)}) AS {sql}")
    pg.execute("SET plan_cache_mode = force_generic_plan")  # the plan every later execution reuses
    try:
        values = ", ".join("NULL" for _ in types)
        return "\n".join(row[0] for row in pg.execute(f"EXPLAIN EXECUTE q({values})").fetchall())
    finally:
        pg.execute("RESET plan_cache_mode")
        pg.execute("DEALLOCATE q")


def _fill(pg: Any, rows: int, hospitals: int = 1) -> None:
    """A young table: many settlements of few hospitals, never analyzed (the state that misled the planner)."""
    pg.execute("TRUNCATE settlements CASCADE")
    pg.execute(
        "INSERT INTO settlements (settlement_id, hospital_id, claim_id, claim_hash, request_body, key_id, status,"
        " settled_at, person_id, scheme, category, visit_type, admitted, discharged, policy_year,"
        " schedule_version, pathway, total_fen, fully_self_paid_fen, over_limit_fen, pre_self_paid_fen,"
        " in_scope_fen, deductible_fen, basic_fen, critical_illness_fen, medical_assistance_fen, charity_fen,"
        " backstop_fen, patient_pays_fen, hospital_bears_fen, result, trace, accumulators_after, contribution)"
        " SELECT 's' || n, 'H' || (n %% %s), 'C' || n, 'h', '{}', 'k', 'settled', now(), 'p', 'resident', 'none',"
        " 'inpatient', '2019-01-01', '2019-01-02', 2019, 'v', 'standard', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,"
        " '{}', '[]', '{}', '{}' FROM generate_series(1, %s) AS n",
        (hospitals, rows),
    )


@pytest.mark.parametrize("analyzed", [False, True])
def test_claim_lookups_use_the_unique_index_only(pg: Any, analyzed: bool) -> None:
    _fill(pg, 3000)
    if analyzed:
        pg.execute("ANALYZE settlements")
    lookups = {
        "the settle's read": (pgcounter.READ, ("text", "text", "text", "text", "date", "int", "text[]")),
        "the replay": (pgcounter.REPLAY.replace("%s", "$1", 1).replace("%s", "$2", 1), ("text", "text")),
    }
    for name, (sql, types) in lookups.items():
        plan = _plan(pg, sql, *types)
        assert LISTING not in plan, f"{name} may walk a hospital's settlements:\n{plan}"
        assert UNIQUE in plan, f"{name}:\n{plan}"
    pg.execute("TRUNCATE settlements CASCADE")


def test_the_listing_can_still_use_its_index(pg: Any) -> None:
    _fill(pg, 3000, hospitals=100)
    pg.execute("ANALYZE settlements")
    listing = (
        "SELECT seq FROM settlements WHERE seq > $1 AND status IS NOT NULL AND hospital_id = $2"
        " ORDER BY seq LIMIT 50"
    )
    pg.execute("SET enable_seqscan = off")
    try:
        plan = _plan(pg, listing, "bigint", "text")
    finally:
        pg.execute("RESET enable_seqscan")
        pg.execute("TRUNCATE settlements CASCADE")
    assert LISTING in plan, plan
