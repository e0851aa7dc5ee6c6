"""`settle --engine dask` against the sequential `settle`, byte for byte, where the pools run dry.

One LocalCluster(n_workers=2, threads_per_worker=1) for the module. Every
scenario first checks from the sequential output that the pool it is about
really ran dry (else the test would prove nothing), then compares.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from settlement.distributed import partition as pt
from settlement.distributed.run import Summary, input_jobs, settle_on_cluster

from .helpers import (
    claims,
    emergency_totals,
    fund_totals,
    make_region,
    sequential,
    tables_of,
    with_emergencies,
    write_stream,
)

distributed = pytest.importorskip("distributed")




def run_dask(client: Any, path: Path, tables: Any, parts: int = 3, block_bytes: int = 200_000) -> tuple[bytes, Summary]:
    out: list[bytes] = []
    summary = settle_on_cluster(client, input_jobs(str(path), block_bytes=block_bytes), tables, out.append, parts)
    return b"".join(out), summary


def assert_same(client: Any, path: Path, tables: Any, **kw: Any) -> tuple[bytes, Summary]:
    expected = sequential(path, tables)
    got, summary = run_dask(client, path, tables, **kw)
    assert got.count(b"\n") == expected.count(b"\n")
    assert got == expected
    return expected, summary


def test_pools_run_dry_at_different_points(client: Any, tmp_path: Path) -> None:
    """poverty_relief runs dry early in 2018 and late in 2019; byte for byte."""
    region = make_region(tmp_path, {("2018", "poverty_relief"): "3000.00", ("2019", "poverty_relief"): "60000.00"})
    tables = tables_of(region)
    path = write_stream(tmp_path / "in.jsonl", claims(tables, 1200, 150, seed=11))
    expected, summary = assert_same(client, path, tables)
    totals = fund_totals(expected)
    assert totals[(2018, "poverty_relief")] == 300_000
    assert totals[(2019, "poverty_relief")] == 6_000_000
    assert summary.rounds[-1][1] == 0  # the last round confirmed: nothing changed
    assert any(r[2] > 0 for r in summary.rounds)  # and persons were settled again before it


def test_two_funds_both_limited(client: Any, tmp_path: Path) -> None:
    """Both funds run dry; the first one's shortage raises what the second pays (R grows)."""
    region = make_region(tmp_path, {
        ("2018", "poverty_relief"): "2000.00", ("2018", "children_major_illness"): "5000.00",
        ("2019", "poverty_relief"): "4000.00", ("2019", "children_major_illness"): "8000.00",
    })
    tables = tables_of(region)
    rows = claims(tables, 900, 120, seed=12, child_share=0.5, major_share=0.5)
    path = write_stream(tmp_path / "in.jsonl", rows)
    expected, _ = assert_same(client, path, tables, parts=4)
    totals = fund_totals(expected)
    assert totals[(2018, "poverty_relief")] == 200_000
    assert totals[(2018, "children_major_illness")] == 500_000
    assert totals[(2019, "children_major_illness")] == 800_000


def test_mid_year_schedule_change(client: Any, tmp_path: Path) -> None:
    """A version from 2019-07-01 with a larger pool: the year's pool, run dry, opens again mid-year."""
    region = make_region(
        tmp_path,
        {("2019", "poverty_relief"): "3000.00", ("2019", "children_major_illness"): "4000.00"},
        mid_year={"poverty_relief": "9000.00", "children_major_illness": "2000.00"},
    )
    tables = tables_of(region)
    assert len(tables.schedules.versions) == 3
    path = write_stream(tmp_path / "in.jsonl", claims(tables, 1000, 100, seed=13, years=(2019,), child_share=0.3))
    expected, _ = assert_same(client, path, tables)
    assert fund_totals(expected)[(2019, "poverty_relief")] == 900_000
    schedules = {orjson.loads(line).get("schedule") for line in expected.splitlines()}
    assert {"heilongjiang-2019", "heilongjiang-2019-h2"} <= schedules


def test_persons_with_many_claims_across_blocks(client: Any, tmp_path: Path) -> None:
    """Six persons, 600 claims in ~25 blocks: each person's claims come from many read tasks."""
    region = make_region(tmp_path, {("2018", "poverty_relief"): "5000.00", ("2019", "poverty_relief"): "5000.00"})
    tables = tables_of(region)
    path = write_stream(tmp_path / "in.jsonl", claims(tables, 600, 6, seed=14))
    expected, summary = assert_same(client, path, tables, parts=3, block_bytes=30_000)
    assert summary.blocks > 20
    assert fund_totals(expected)[(2018, "poverty_relief")] == 500_000


def test_invalid_lines_in_place(client: Any, tmp_path: Path) -> None:
    """Invalid, blank and no_standard lines stay where they are, between settled claims."""
    region = make_region(tmp_path, {("2018", "poverty_relief"): "5000.00"})
    tables = tables_of(region)
    rows = claims(tables, 500, 80, seed=15, major_share=0.5)
    for row in rows[::7]:  # a fixed-standard treatment that no standard has: the engine's own error
        if "treatment" in row:
            row["treatment"] = "no_such_treatment"
    rows[3]["items"][0]["code"] = "NO-SUCH-CODE"
    path = write_stream(tmp_path / "in.jsonl", rows, bad_every=9, seed=15)
    expected, _ = assert_same(client, path, tables)
    assert b'"invalid_claim"' in expected and b'"no_standard"' in expected
    assert fund_totals(expected)[(2018, "poverty_relief")] == 500_000


def test_pool_dry_on_the_very_first_claim(client: Any, tmp_path: Path) -> None:
    """A pool of 0.01 yuan: the first claim takes it, every later one gets 0.00."""
    region = make_region(tmp_path, {("2018", "poverty_relief"): "0.01"})
    tables = tables_of(region)
    rows = claims(tables, 400, 60, seed=16, years=(2018,))
    first = next(i for i, r in enumerate(rows) if r["patient"]["category"] not in ("none",)
                 and r["visit"]["type"] == "inpatient" and "treatment" not in r)
    rows.insert(0, rows.pop(first))
    path = write_stream(tmp_path / "in.jsonl", rows)
    expected, _ = assert_same(client, path, tables)
    lines = [orjson.loads(line) for line in expected.splitlines()]
    assert lines[0]["charity_by_fund"]["poverty_relief"] == "0.01"
    later = [x["charity_by_fund"]["poverty_relief"] for x in lines[1:]
             if "poverty_relief" in x.get("charity_by_fund", {})]
    assert later and set(later) == {"0.00"}


def _emergency_eligible(row: dict[str, Any]) -> bool:
    """SPEC §5.5 from the claim itself (the bundled schedules list hospital levels 2 and 3)."""
    patient = row["patient"]
    return bool(row["visit"].get("emergency")) and row["hospital"]["level"] in (2, 3) and bool(
        patient.get("unidentified") or patient.get("unable_to_pay"))


def test_emergency_pool_runs_dry_mid_stream(client: Any, tmp_path: Path) -> None:
    """The emergency relief pool (after the charity funds) runs dry mid-2018 and mid-2019, poverty relief
    too; unidentified patients (no person-year) and unable-to-pay persons, byte for byte."""
    region = make_region(tmp_path, {("2018", "emergency_relief"): "60000.00", ("2019", "emergency_relief"): "40000.00",
                                    ("2018", "poverty_relief"): "3000.00"})
    tables = tables_of(region)
    rows = with_emergencies(claims(tables, 1500, 150, seed=31), 0.1, seed=31)
    path = write_stream(tmp_path / "in.jsonl", rows, bad_every=23, seed=31)
    expected, summary = assert_same(client, path, tables, parts=3)
    assert emergency_totals(expected) == {2018: 6_000_000, 2019: 4_000_000}
    assert fund_totals(expected)[(2018, "poverty_relief")] == 300_000
    paid = {line["claim_id"]: line["payments"]["emergency_relief"]
            for line in map(orjson.loads, expected.splitlines()) if "payments" in line}
    eligible = [paid[r["claim_id"]] for r in rows if _emergency_eligible(r)]
    dry = max(i for i, amount in enumerate(eligible) if amount != "0.00")
    assert dry < len(eligible) - 10  # the pool ran dry with eligible claims after it, paid nothing
    assert any(r["patient"].get("unidentified") and paid[r["claim_id"]] != "0.00" for r in rows)
    er_column = pt.pool_width(tables) - 1
    assert any(cols == [er_column] and affected > 0 for cols, affected, _ in summary.rounds)


def test_emergency_pool_dry_on_the_very_first_claim(client: Any, tmp_path: Path) -> None:
    """An emergency relief pool of 0.01 yuan: the first claim, an unidentified patient's, takes it."""
    region = make_region(tmp_path, {("2018", "emergency_relief"): "0.01"})
    tables = tables_of(region)
    rows = with_emergencies(claims(tables, 500, 60, seed=32, years=(2018,)), 0.15, seed=32)
    first = next(i for i, r in enumerate(rows) if r["patient"].get("unidentified") and _emergency_eligible(r))
    rows.insert(0, rows.pop(first))
    path = write_stream(tmp_path / "in.jsonl", rows)
    expected, _ = assert_same(client, path, tables, parts=4, block_bytes=40_000)
    lines = [orjson.loads(line) for line in expected.splitlines()]
    assert lines[0]["payments"]["emergency_relief"] == "0.01"
    later = [line["payments"]["emergency_relief"] for line, row in zip(lines[1:], rows[1:], strict=True)
             if _emergency_eligible(row)]
    assert len(later) > 20 and set(later) == {"0.00"}


def test_no_limited_pool_is_one_pass(client: Any, tmp_path: Path) -> None:
    """Pools that never run dry: pass 1 is the result, no persons settled again."""
    region = make_region(tmp_path, {("2018", "poverty_relief"): "null", ("2019", "poverty_relief"): "null",
                                    ("2018", "children_major_illness"): "null",
                                    ("2019", "children_major_illness"): "null",
                                    ("2018", "emergency_relief"): "null", ("2019", "emergency_relief"): "null"})
    tables = tables_of(region)
    path = write_stream(tmp_path / "in.jsonl", claims(tables, 300, 50, seed=17), bad_every=13)
    _, summary = assert_same(client, path, tables, parts=2)
    assert summary.rounds == []


def test_a_directory_of_files_in_name_order(client: Any, tmp_path: Path) -> None:
    region = make_region(tmp_path, {("2018", "poverty_relief"): "4000.00"})
    tables = tables_of(region)
    rows = claims(tables, 400, 50, seed=18)
    folder = tmp_path / "parts"
    folder.mkdir()
    write_stream(folder / "b.jsonl", rows[200:])
    write_stream(folder / "a.jsonl", rows[:200])
    whole = write_stream(tmp_path / "whole.jsonl", rows)
    got, _ = run_dask(client, folder, tables)
    assert got == sequential(whole, tables)


def test_empty_input(client: Any, tmp_path: Path) -> None:
    tables = tables_of(make_region(tmp_path, {}))
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    assert run_dask(client, path, tables)[0] == b""
    path.write_bytes(b"\n\nnot json\n")
    assert run_dask(client, path, tables)[0] == sequential(path, tables)


POOLS = st.sampled_from(["0.01", "50.00", "800.00", "3000.00", "20000.00", "null"])


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(1, 80),
    persons=st.integers(1, 12),
    seed=st.integers(0, 10_000),
    pools=st.tuples(POOLS, POOLS, POOLS, POOLS, POOLS, POOLS),
    mid_year=st.none() | st.tuples(POOLS, POOLS, POOLS),
    emergencies=st.sampled_from([0.0, 0.1, 0.3]),
    parts=st.integers(1, 4),
    block_bytes=st.sampled_from([8_000, 40_000, 1 << 20]),
    bad_every=st.sampled_from([0, 5]),
)
def test_property_random_streams_and_pools(
    client: Any, n: int, persons: int, seed: int, pools: tuple[str, str, str, str, str, str],
    mid_year: tuple[str, str, str] | None, emergencies: float, parts: int, block_bytes: int, bad_every: int,
) -> None:
    """Random small streams, pools (0.01 yuan to none: both charity funds and emergency relief), emergency
    claims (unable to pay, unidentified), mid-year versions, partitions and blocks."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        region = make_region(
            root,
            {("2018", "poverty_relief"): pools[0], ("2018", "children_major_illness"): pools[1],
             ("2019", "poverty_relief"): pools[2], ("2019", "children_major_illness"): pools[3],
             ("2018", "emergency_relief"): pools[4], ("2019", "emergency_relief"): pools[5]},
            mid_year=None if mid_year is None else {"poverty_relief": mid_year[0],
                                                    "children_major_illness": mid_year[1],
                                                    "emergency_relief": mid_year[2]},
        )
        tables = tables_of(region)
        rows = with_emergencies(claims(tables, n, persons, seed=seed, child_share=0.4, major_share=0.3),
                                emergencies, seed=seed)
        path = write_stream(root / "in.jsonl", rows, bad_every=bad_every, seed=seed)
        assert_same(client, path, tables, parts=parts, block_bytes=block_bytes)


def as_result_json(row: dict[str, Any], fund_ids: tuple[str, ...]) -> dict[str, Any]:
    """A Parquet row in the §6 JSON shape (to compare with the sequential output)."""
    def yuan(value: Any) -> str:
        return f"{value:.2f}"

    if row["error_code"] is not None:
        return {"claim_id": row["claim_id"], "error": {"code": row["error_code"], "message": row["error_message"]}}
    amounts = ("total", "fully_self_paid", "over_limit", "pre_self_paid", "in_scope", "deductible")
    payments = ("basic", "critical_illness", "medical_assistance", "charity", "emergency_relief", "backstop")
    return {
        "claim_id": row["claim_id"], "schedule": row["schedule"], "policy_year": row["policy_year"],
        "pathway": row["pathway"], "disease_group": row["disease_group"],
        "amounts": {k: yuan(row[k]) for k in amounts},
        "payments": {k: yuan(row[k]) for k in payments},
        "charity_by_fund": {f: yuan(row[f"charity_{f}"]) for f in fund_ids if row[f"charity_{f}"] is not None},
        "patient_pays": yuan(row["patient_pays"]), "hospital_bears": yuan(row["hospital_bears"]),
    }


def test_parquet_output_same_values(client: Any, tmp_path: Path) -> None:
    """--output x.parquet: one row per line, money as decimal128(18, 2), the same values as the JSON."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from settlement.distributed.parquet_out import settle_to_parquet

    region = make_region(tmp_path, {("2018", "poverty_relief"): "3000.00",
                                    ("2018", "children_major_illness"): "900.00"})
    tables = tables_of(region)
    rows = claims(tables, 400, 60, seed=19, child_share=0.4, major_share=0.4)
    for row in rows[::11]:
        if "treatment" in row:
            row["treatment"] = "no_such_treatment"
    path = write_stream(tmp_path / "in.jsonl", rows, bad_every=8)
    target = tmp_path / "out.parquet"
    settle_to_parquet(client, input_jobs(str(path), block_bytes=50_000), tables, str(target), 3)
    table = pq.read_table(target)
    assert table.schema.field("patient_pays").type == pa.decimal128(18, 2)
    assert table.schema.field("policy_year").type == pa.int64()
    expected = [orjson.loads(line) for line in sequential(path, tables).splitlines()]
    got = [as_result_json(r, tables.schedules.fund_ids) for r in table.to_pylist()]
    assert got == expected
    assert any("error" in e for e in expected) and any(e.get("charity_by_fund") for e in expected)


def test_parquet_input(client: Any, tmp_path: Path) -> None:
    """Claims in Parquet (SPEC §3's keys as nested columns, several row groups) settle as their JSON lines."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    region = make_region(tmp_path, {("2019", "poverty_relief"): "2000.00"})
    tables = tables_of(region)
    rows = claims(tables, 300, 40, seed=20, years=(2019,))
    folder = tmp_path / "claims"
    folder.mkdir()
    # every row with every column (pyarrow takes the columns from the first row); null: the key is absent
    full = [{**row, "treatment": row.get("treatment"), "sessions": row.get("sessions")} for row in rows]
    assert any(r["treatment"] for r in full[:120]) and any(r["treatment"] is None for r in full[:120])
    pq.write_table(pa.Table.from_pylist(full[:120]), folder / "part-0.parquet", row_group_size=50)
    pq.write_table(pa.Table.from_pylist(full[120:]), folder / "part-1.parquet", row_group_size=70)
    got, summary = run_dask(client, folder, tables)
    assert summary.blocks == 3 + 3
    expected = sequential(write_stream(tmp_path / "in.jsonl", rows), tables)
    assert got == expected
    # the form `settlement simulate` reads: one JSON claim a row in a string column 'claim'
    texts = folder / "texts.parquet"
    pq.write_table(pa.table({"claim": [orjson.dumps(r).decode() for r in rows]}), texts, row_group_size=100)
    assert run_dask(client, texts, tables)[0] == expected


def test_cli_on_an_existing_cluster(client: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`settlement settle --engine dask --scheduler ADDRESS INPUT --output OUT` writes the sequential bytes."""
    from settlement.cli import main

    region = make_region(tmp_path, {("2018", "poverty_relief"): "1000.00"})
    tables = tables_of(region)
    path = write_stream(tmp_path / "in.jsonl", claims(tables, 200, 30, seed=21), bad_every=10)
    out = tmp_path / "out.jsonl"
    address = client.scheduler.address
    code = main(["settle", "--schedules", str(region), "--engine", "dask", "--scheduler", address,
                 "--partitions", "2", str(path), "--output", str(out)])
    assert code == 0
    assert out.read_bytes() == sequential(path, tables)
    assert "settled 200 claims" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--scheduler", "tcp://x:1"], "--scheduler need --engine dask"),
        (["--engine", "dask", "--workers", "2"], "--workers is for the local engine"),
        (["--engine", "dask"], "not stdin"),
        (["--engine", "dask", "--partitions", "0", "FILE"], "--partitions must be at least 1"),
        (["--engine", "dask", "NO_SUCH_FILE"], "cannot read NO_SUCH_FILE"),
    ],
)
def test_cli_refuses_bad_arguments(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from settlement.cli import main

    path = tmp_path / "in.jsonl"
    path.write_bytes(b"")
    argv = [str(path) if a == "FILE" else a for a in argv]
    code = main(["settle", "--schedules", str(make_region(tmp_path, {})), *argv])
    assert code != 0
    assert message in capsys.readouterr().err


def test_simulate_same_report(client: Any, tmp_path: Path) -> None:
    """simulate on the cluster: the sequential simulation's report, pools running dry on both sides."""
    from settlement.distributed.simulate import simulate_on_cluster
    from settlement.simulate import blocks, simulate

    base_region = make_region(tmp_path / "base", {("2018", "poverty_relief"): "3000.00"})
    draft_region = make_region(tmp_path / "draft", {("2018", "poverty_relief"): "9000.00",
                                                     ("2018", "children_major_illness"): "1000.00"})
    baseline, draft = tables_of(base_region), tables_of(draft_region)
    path = write_stream(tmp_path / "in.jsonl", claims(baseline, 500, 70, seed=22, child_share=0.3), bad_every=17)
    by = ["category", "month"]
    expected = simulate(blocks(path), baseline, draft, by)
    got = simulate_on_cluster(client, input_jobs(str(path), block_bytes=150_000), baseline, draft, by, 3)
    assert got == expected
    assert expected["delta"]["charity"] != "0.00" and expected["errors"]["baseline"] > 0
