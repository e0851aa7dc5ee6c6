"""`settlement simulate` against hand-computed totals on the worked examples."""

from __future__ import annotations

import json
import shutil
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from settlement.cli import main
from settlement.layers import SHARES

ROOT = Path(__file__).resolve().parents[1]
REGION = ROOT / "fee_schedules" / "heilongjiang"
CLAIMS = ROOT / "examples" / "claims.jsonl"


@pytest.fixture(scope="module")
def draft(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled schedules with the 2018 resident inpatient deductible of level 2 raised from 450 to 650."""
    target = tmp_path_factory.mktemp("draft") / "heilongjiang"
    shutil.copytree(REGION, target)
    path = target / "2018" / "schedule.yaml"
    text = path.read_text()
    old = "deductible: {1: 200.00, 2: 450.00, 3: 700.00}"
    assert text.count(old) == 1
    path.write_text(text.replace(old, "deductible: {1: 200.00, 2: 650.00, 3: 700.00}"))
    return target


def run(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert main(["simulate", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_same_schedules_give_the_worked_examples_and_no_delta(capsys) -> None:
    report = run(capsys, "--baseline", str(REGION), "--schedules", str(REGION), str(CLAIMS))
    expected = [json.loads(x) for x in (ROOT / "examples" / "expected.jsonl").read_text().splitlines() if x.strip()]
    settled = [x for x in expected if "error" not in x]
    errors = sum(1 for x in expected if "error" in x)
    assert report["claims"] == len(expected) and report["errors"] == {"baseline": errors, "draft": errors}
    for layer in SHARES:
        values = [x["payments"].get(layer, "0.00") if layer in x["payments"] else x.get(layer, "0.00") for x in settled]
        assert Decimal(report["baseline"][layer]) == sum(Decimal(v) for v in values), layer
        assert report["delta"][layer] == "0.00"
    assert list(report) == ["claims", "errors", "baseline", "draft", "delta", "groups"]


def test_a_higher_deductible_by_hand(capsys, tmp_path, draft) -> None:
    # EX-01: resident, registered_poor (deductible −50 %, rate +5 points), level 2, in scope 1433.10, total 2368.00.
    # baseline basic = (1433.10 − 225.00) × 80 % = 966.48; draft (650 × 50 % = 325.00): 886.48   → −80.00
    # assistance 70 % of what basic leaves: 466.62 → 326.63; 546.62 → 382.63                    → +56.00
    # charity 50 % of the rest: (2368 − 1293.11) → 537.45; (2368 − 1269.11) → 549.45           → +12.00
    # backstop: all above 10 % of 2368.00 (236.80): 300.64 → 312.64                             → +12.00
    one = tmp_path / "ex01.jsonl"
    one.write_text(CLAIMS.read_text().splitlines()[0] + "\n")
    report = run(capsys, "--baseline", str(REGION), "--schedules", str(draft), str(one), "--by", "level,visit_type")
    assert report["delta"] == {
        "basic": "-80.00",
        "critical_illness": "0.00",
        "medical_assistance": "56.00",
        "charity": "12.00",
        "emergency_relief": "0.00",
        "backstop": "12.00",
        "patient_pays": "0.00",
        "hospital_bears": "0.00",
    }
    assert report["baseline"]["basic"] == "966.48" and report["draft"]["basic"] == "886.48"
    [group] = report["groups"]
    assert (group["level"], group["visit_type"], group["claims"]) == (2, "inpatient", {"baseline": 1, "draft": 1})
    assert group["delta"] == report["delta"]
    assert group["charity_by_fund"]["delta"]["poverty_relief"] == "12.00"


def test_groups_add_up_html_and_parquet(capsys, tmp_path, draft) -> None:
    html = tmp_path / "report.html"
    report = run(
        capsys,
        "--baseline",
        str(REGION),
        "--schedules",
        str(draft),
        str(CLAIMS),
        "--by",
        "category,month,pathway",
        "--html",
        str(html),
    )
    for side in ("baseline", "draft"):
        for layer in SHARES:
            assert sum(Decimal(g[side][layer]) for g in report["groups"]) == Decimal(report[side][layer])
        assert sum(g["claims"][side] for g in report["groups"]) == report["claims"] - report["errors"][side]
    assert {g["pathway"] for g in report["groups"]} == {"standard", "single_disease"}
    assert all(len(g["month"]) == 7 for g in report["groups"])
    page = html.read_text()
    assert page.count("<svg") == 2 and "<script" not in page and "政策测算" in page
    # the same claims from Parquet (a string column 'claim')
    lines = [x for x in CLAIMS.read_text().splitlines() if x.strip()]
    parquet = tmp_path / "claims.parquet"
    pq.write_table(pa.table({"claim": lines}), parquet)
    again = run(
        capsys, "--baseline", str(REGION), "--schedules", str(draft), str(parquet), "--by", "category,month,pathway"
    )
    assert again == report


def test_bad_inputs_exit_2(capsys, tmp_path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(REGION, broken)
    (broken / "2018" / "schedule.yaml").write_text("id: x\n")
    assert main(["simulate", "--baseline", str(REGION), "--schedules", str(broken), str(CLAIMS)]) == 2
    assert "draft schedules" in capsys.readouterr().err
    assert main(["simulate", "--baseline", str(REGION), "--schedules", str(REGION), str(CLAIMS), "--by", "x"]) == 2
    assert main(["simulate", "--baseline", str(REGION), "--schedules", str(REGION), str(tmp_path / "none")]) == 2
