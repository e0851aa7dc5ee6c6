"""SPEC §4: the strict schedule loader. Every defect names the file and the key."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from settlement import cli
from settlement.batchrun import StreamSettler
from settlement.engine import compile_tables
from settlement.schedules import ScheduleError, ScheduleSet, load_region


@pytest.fixture
def region(tmp_path: Path, region_dir: Path) -> Path:
    """A private copy of the shipped region folder, to break."""
    root = tmp_path / "heilongjiang"
    shutil.copytree(region_dir, root)
    return root


def edit(file: Path, old: str, new: str) -> None:
    text = file.read_text("utf-8")
    assert text.count(old) == 1, f"{old!r} must occur once in {file}"
    file.write_text(text.replace(old, new), "utf-8")


def defects(root: Path) -> list[str]:
    with pytest.raises(ScheduleError) as info:
        load_region(root)
    assert info.value.defects, "a ScheduleError lists its defects"
    assert str(info.value) == "\n".join(info.value.defects)
    return info.value.defects


def one_defect(root: Path, file: str, key: str, *words: str) -> str:
    """Loading fails with exactly one defect, naming the file and the key path."""
    found = defects(root)
    assert len(found) == 1, found
    message = found[0]
    assert str(root / file) in message, message
    assert re.search(rf"(^|[\s:]){re.escape(key)}:", message), f"key {key!r} not in {message!r}"
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    return message


Y18 = "2018/schedule.yaml"
C18 = "2018/catalog.csv"
INPATIENT_CAP = "      annual_cap: 100000.00\n    outpatient:\n"


# --------------------------------------------------------------------------- the shipped data


def test_shipped_region_loads_exactly(schedules: ScheduleSet) -> None:
    v18, v19 = schedules.versions
    assert (v18.id, str(v18.effective_from), v19.id, str(v19.effective_from)) == (
        "heilongjiang-2018",
        "2018-01-01",
        "heilongjiang-2019",
        "2019-01-01",
    )
    section = v18.basic.sections[("resident", "inpatient")]
    assert section.deductible_fen == {1: 20_000, 2: 45_000, 3: 70_000}
    assert section.rate_bp == {1: 8_500, 2: 7_500, 3: 6_000}
    assert section.annual_cap_fen == 10_000_000
    assert v19.basic.sections[("resident", "inpatient")].annual_cap_fen == 15_000_000
    crit = v18.critical_illness.sections["resident"]  # type: ignore[union-attr]
    assert [(b.up_to_fen, b.rate_bp) for b in crit.bands] == [(5_000_000, 6_000), (10_000_000, 6_500), (None, 7_000)]
    assert v18.medical_assistance.categories["extreme_poverty"].annual_cap_fen is None  # type: ignore[union-attr]
    assert [f.id for f in v18.charity_funds] == ["poverty_relief", "children_major_illness"]
    assert schedules.fund_ids == ("poverty_relief", "children_major_illness")
    assert v18.catalog["C000009"].cls == "B" and v18.catalog["C000009"].self_pay_ratio_bp == 2_000
    assert v18.catalog["C000009"].price_cap_fen == 980_000
    assert v18.catalog["X000026"].cls == "C" and v19.catalog["X000026"].cls == "B"
    assert "C000016" not in v18.catalog and "C000016" in v19.catalog


def test_version_in_force_on_the_discharge_date(schedules: ScheduleSet) -> None:
    import datetime as dt

    assert schedules.index_for(dt.date(2017, 12, 31)) == -1
    assert schedules.index_for(dt.date(2018, 1, 1)) == 0
    assert schedules.index_for(dt.date(2018, 12, 31)) == 0
    assert schedules.index_for(dt.date(2019, 1, 1)) == 1
    assert schedules.index_for(dt.date(2030, 1, 1)) == 1


# --------------------------------------------------------------------------- one test per defect kind


def test_unknown_key(region: Path) -> None:
    edit(region / Y18, INPATIENT_CAP, "      annual_cap: 100000.00\n      extra_key: 1\n    outpatient:\n")
    one_defect(region, Y18, "basic.resident.inpatient.extra_key", "unknown key")


@pytest.mark.parametrize("key", ["interest", "nullable_cap", "function-x", "int"])
def test_unknown_key_is_named_whatever_it_looks_like(region: Path, key: str) -> None:
    edit(region / Y18, INPATIENT_CAP, f"      annual_cap: 100000.00\n      {key}: 1\n    outpatient:\n")
    one_defect(region, Y18, f"basic.resident.inpatient.{key}", "unknown key")


def test_unknown_top_level_key(region: Path) -> None:
    edit(region / Y18, 'region: "230000"\n', 'region: "230000"\nintro: hello\n')
    one_defect(region, Y18, "intro", "unknown key")


def test_misspelt_optional_section_is_unknown_not_absent(region: Path) -> None:
    edit(region / Y18, "backstop:  ", "backstp:  ")
    one_defect(region, Y18, "backstp", "unknown key")


def test_missing_key(region: Path) -> None:
    edit(region / Y18, INPATIENT_CAP, "    outpatient:\n")
    one_defect(region, Y18, "basic.resident.inpatient.annual_cap", "missing")


def test_missing_share_key(region: Path) -> None:
    edit(
        region / Y18,
        "  shares: {basic: 0.70, critical_illness: 0.10, medical_assistance: 0.10}",
        "  shares: {basic: 0.70, critical_illness: 0.10}",
    )
    one_defect(region, Y18, "single_disease.shares.medical_assistance", "missing")


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("      annual_cap: 100000.00\n", "      annual_cap: lots\n", "basic.resident.inpatient.annual_cap"),
        ("      annual_cap: 100000.00\n", "      annual_cap: true\n", "basic.resident.inpatient.annual_cap"),
        ("      annual_cap: 100000.00\n", "      annual_cap: '100000.00'\n", "basic.resident.inpatient.annual_cap"),
        (
            "{1: 200.00, 2: 450.00, 3: 700.00}",
            "{1: 200.00, 2: abc, 3: 700.00}",
            "basic.resident.inpatient.deductible.2",
        ),
        (
            "visit_types: [inpatient, chronic_outpatient]\n    annual_deductible: 12000.00",
            "visit_types: inpatient\n    annual_deductible: 12000.00",
            "critical_illness.resident.visit_types",
        ),
        (
            "    annual_deductible: 12000.00",
            "    annual_deductible: null",
            "critical_illness.resident.annual_deductible",
        ),
        ("effective_from: 2018-01-01", "effective_from: January", "effective_from"),
        (
            "      max_age: 14\n      shares: {basic: 0.70, critical_illness: 0, medical_assistance: 0.20}\n"
            "      standards:\n        - {treatment: all_standard_risk",
            "      max_age: fourteen\n      shares: {basic: 0.70, critical_illness: 0, medical_assistance: 0.20}\n"
            "      standards:\n        - {treatment: all_standard_risk",
            "single_disease.groups.5.max_age",
        ),
        (
            "amount: 6000.00, per: session}\n    - id: gastric_cancer",
            "amount: 6000.00, per: sessions}\n    - id: gastric_cancer",
            "single_disease.groups.0.standards.1.per",
        ),
    ],
)
def test_wrong_type(region: Path, old: str, new: str, key: str) -> None:
    edit(region / Y18, old, new)
    one_defect(region, Y18, key, "wrong type")


def test_null_where_a_number_is_required_is_explained(region: Path) -> None:
    edit(region / Y18, "    annual_deductible: 12000.00", "    annual_deductible: null")
    message = one_defect(region, Y18, "critical_illness.resident.annual_deductible", "wrong type")
    assert "null" in message and "validation error" not in message


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("rate: {1: 0.85, 2: 0.75, 3: 0.60}", "rate: {1: 1.85, 2: 0.75, 3: 0.60}", "basic.resident.inpatient.rate.1"),
        ("max_personal_share: 0.10", "max_personal_share: -0.10", "backstop.max_personal_share"),
        (
            "rate: 0.80\n      annual_cap_per_person: 30000.00",
            "rate: 1.01\n      annual_cap_per_person: 30000.00",
            "charity.funds.1.rate",
        ),
        ("{up_to: 50000.00, rate: 0.60}", "{up_to: 50000.00, rate: 60}", "critical_illness.resident.bands.0.rate"),
    ],
)
def test_rate_outside_0_1(region: Path, old: str, new: str, key: str) -> None:
    edit(region / Y18, old, new)
    one_defect(region, Y18, key, "rate outside 0–1")


def test_rate_with_more_than_4_decimals(region: Path) -> None:
    edit(region / Y18, "max_personal_share: 0.10", "max_personal_share: 0.10001")
    one_defect(region, Y18, "backstop.max_personal_share", "more than 4 decimals")


def test_shares_above_one(region: Path) -> None:
    edit(
        region / Y18,
        "  shares: {basic: 0.70, critical_illness: 0.10, medical_assistance: 0.10}",
        "  shares: {basic: 0.70, critical_illness: 0.20, medical_assistance: 0.20}",
    )
    one_defect(region, Y18, "single_disease.shares", "more than 1")


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("      annual_cap: 100000.00\n", "      annual_cap: 100000.001\n", "basic.resident.inpatient.annual_cap"),
        ("{up_to: 50000.00, rate: 0.60}", "{up_to: 50000.005, rate: 0.60}", "critical_illness.resident.bands.0.up_to"),
        ("annual_pool: 2000000.00", "annual_pool: 2000000.001", "charity.funds.0.annual_pool"),
        (
            "{treatment: surgery, amount: 50000.00}",
            "{treatment: surgery, amount: 50000.125}",
            "single_disease.groups.0.standards.0.amount",
        ),
    ],
)
def test_money_with_more_than_2_decimals(region: Path, old: str, new: str, key: str) -> None:
    edit(region / Y18, old, new)
    one_defect(region, Y18, key, "more than 2 decimals")


def test_negative_money(region: Path) -> None:
    edit(region / Y18, "annual_pool: 2000000.00", "annual_pool: -1")
    one_defect(region, Y18, "charity.funds.0.annual_pool", "negative")


def test_money_written_with_trailing_zeros_is_fine(region: Path) -> None:
    edit(region / Y18, "annual_pool: 2000000.00", "annual_pool: 2000000.0000")
    assert load_region(region).versions[0].charity_funds[0].annual_pool_fen == 200_000_000


def test_two_versions_with_one_date(region: Path) -> None:
    edit(region / "2019/schedule.yaml", "effective_from: 2019-01-01", "effective_from: 2018-01-01")
    found = defects(region)
    assert len(found) == 1, found
    assert "effective_from" in found[0] and "one date" in found[0]
    assert str(region / "2019/schedule.yaml") in found[0] and str(region / Y18) in found[0]


def test_two_versions_with_one_id(region: Path) -> None:
    edit(region / "2019/schedule.yaml", "id: heilongjiang-2019", "id: heilongjiang-2018")
    found = defects(region)
    assert len(found) == 1 and re.search(r"schedule\.yaml: id: ", found[0]), found


def test_catalog_row_with_a_bad_class(region: Path) -> None:
    edit(region / C18, "X000001,注射用头孢曲松钠 1g,drug,A,,", "X000001,注射用头孢曲松钠 1g,drug,D,,")
    message = one_defect(region, C18 + ":2", "class", "A, B or C")
    assert "'D'" in message


def test_class_b_row_without_a_ratio(region: Path) -> None:
    edit(region / C18, "X000006,注射用奥美拉唑钠 40mg,drug,B,0.10,", "X000006,注射用奥美拉唑钠 40mg,drug,B,,")
    one_defect(region, C18 + ":7", "self_pay_ratio", "required for class B")


@pytest.mark.parametrize(
    ("new", "key", "words"),
    [
        ("X000006,注射用奥美拉唑钠 40mg,drug,B,1.10,", "self_pay_ratio", ("0–1",)),
        ("X000006,注射用奥美拉唑钠 40mg,drug,A,0.10,", "self_pay_ratio", ("empty for class A",)),
        ("X000006,注射用奥美拉唑钠 40mg,drug,B,0.10,12.345", "price_cap", ("more than 2 decimals",)),
        ("X000006,注射用奥美拉唑钠 40mg,drug,B,0.10,-5", "price_cap", ("not a plain number", "-5")),
        ("X000006,注射用奥美拉唑钠 40mg,drug,B,0.10,abc", "price_cap", ("not a number",)),
        ("X000001,注射用奥美拉唑钠 40mg,drug,B,0.10,", "code", ("twice",)),
    ],
)
def test_other_catalog_defects(region: Path, new: str, key: str, words: tuple[str, ...]) -> None:
    edit(region / C18, "X000006,注射用奥美拉唑钠 40mg,drug,B,0.10,", new)
    one_defect(region, C18 + ":7", key, *words)


def test_catalog_header(region: Path) -> None:
    edit(region / C18, "code,name,kind,class,self_pay_ratio,price_cap", "code,name,kind,cls,self_pay_ratio,price_cap")
    found = defects(region)
    assert len(found) == 1 and found[0].startswith(f"{region / C18}:1: header must be code,name,"), found


def test_bands_out_of_order(region: Path) -> None:
    edit(region / Y18, "{up_to: 100000.00, rate: 0.65}", "{up_to: 40000.00, rate: 0.65}")
    one_defect(region, Y18, "critical_illness.resident.bands", "out of order")


def test_last_band_must_be_open(region: Path) -> None:
    edit(region / Y18, "{up_to: null, rate: 0.70}", "{up_to: 200000.00, rate: 0.70}")
    one_defect(region, Y18, "critical_illness.resident.bands", "null")


def test_unknown_category_and_group(region: Path) -> None:
    edit(
        region / Y18,
        "      disease_groups: [childhood_leukemia, childhood_congenital_heart_disease]",
        "      disease_groups: [childhood_leukaemia]",
    )
    one_defect(region, Y18, "charity.funds.1.disease_groups", "childhood_leukaemia")


def test_duplicate_yaml_key(region: Path) -> None:
    edit(region / Y18, 'region: "230000"\n', 'region: "230000"\nregion: "230001"\n')
    message = one_defect(region, Y18, "line 8", "duplicate key")
    assert "'region'" in message


def test_every_defect_of_the_folder_is_reported(region: Path) -> None:
    edit(region / Y18, "max_personal_share: 0.10", "max_personal_share: 2")
    edit(region / Y18, INPATIENT_CAP, "    outpatient:\n")
    edit(region / "2019/catalog.csv", "X000001,注射用头孢曲松钠 1g,drug,A,,", "X000001,注射用头孢曲松钠 1g,drug,Z,,")
    found = defects(region)
    assert len(found) == 3, found
    joined = "\n".join(found)
    assert "backstop.max_personal_share" in joined and "basic.resident.inpatient.annual_cap" in joined
    assert str(region / "2019/catalog.csv") + ":2: class" in joined


def test_missing_files_and_folders(tmp_path: Path, region: Path) -> None:
    assert "not a folder" in defects(tmp_path / "nowhere")[0]
    (tmp_path / "empty").mkdir()
    assert "no version folders" in defects(tmp_path / "empty")[0]
    (region / "2019/catalog.csv").unlink()
    assert defects(region) == [f"{region / '2019/catalog.csv'}: missing file"]


# --------------------------------------------------------------------------- valid variations


CLAIM = {
    "claim_id": "V-1",
    "hospital": {"id": "H0002", "level": 2},
    "patient": {"person_id": "23010219560312041X", "scheme": "resident", "category": "registered_poor"},
    "visit": {"type": "inpatient", "admitted": "2018-01-08", "discharged": "2018-01-19"},
    "diagnosis": {"primary": "C16.0"},
    "treatment": "surgery",
    "items": [
        {"code": "F000001", "quantity": 11, "unit_price": "35.00"},
        {"code": "X000006", "quantity": 14, "unit_price": "48.50"},
    ],
}


def _settle(root: Path) -> dict[str, object]:
    return StreamSettler(compile_tables(load_region(root))).settle_lines([json.dumps(CLAIM)])[0]


def test_empty_charity_fund_list_is_valid(region: Path) -> None:
    text = (region / Y18).read_text("utf-8")
    start, end = text.index("charity:"), text.index("backstop:")
    (region / Y18).write_text(text[:start] + "charity:\n  funds: []\n\n" + text[end:], "utf-8")
    version = load_region(region).versions[0]
    assert version.charity_funds == ()
    result = _settle(region)
    assert result["charity_by_fund"] == {} and result["payments"]["charity"] == "0.00"  # type: ignore[index]


def test_empty_backstop_lists_are_valid(region: Path) -> None:
    edit(
        region / Y18,
        "  categories: [extreme_poverty, subsistence_allowance, registered_poor]\n  visit_types: [inpatient]\n"
        "  hospital_levels: [1, 2]",
        "  categories: []\n  visit_types: []\n  hospital_levels: []",
    )
    backstop = load_region(region).versions[0].backstop
    assert backstop is not None and not backstop.categories
    assert _settle(region)["payments"]["backstop"] == "0.00"  # type: ignore[index]


def test_optional_sections_may_be_missing(region: Path) -> None:
    text = (region / Y18).read_text("utf-8")
    keep = text[: text.index("references:")] + text[text.index("categories:\n") : text.index("  category_adjustments:")]
    (region / Y18).write_text(keep, "utf-8")
    version = load_region(region).versions[0]
    assert version.critical_illness is None and version.medical_assistance is None
    assert version.backstop is None and version.single_disease is None and version.charity_funds == ()
    assert version.emergency_relief is None
    assert version.basic.category_adjustments == {}
    result = _settle(region)
    assert result["pathway"] == "standard" and result["disease_group"] is None
    payments = result["payments"]
    assert isinstance(payments, dict)
    assert payments["basic"] != "0.00"
    assert [payments[k] for k in ("critical_illness", "medical_assistance", "charity", "emergency_relief", "backstop")
            ] == ["0.00"] * 5


def test_missing_basic_section_pays_nothing(region: Path) -> None:
    text = (region / Y18).read_text("utf-8")
    start = text.index("  resident:                # 城乡居民基本医疗保险")
    end = text.index("  employee:                # 城镇职工基本医疗保险")
    (region / Y18).write_text(text[:start] + text[end:], "utf-8")
    claim = dict(CLAIM, diagnosis={"primary": "J18.9"})
    del claim["treatment"]
    result = StreamSettler(compile_tables(load_region(region))).settle_lines([json.dumps(claim)])[0]
    assert result["payments"]["basic"] == "0.00" and result["amounts"]["deductible"] == "0.00"


def test_validate_command(region_dir: Path, region: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["schedules", "validate", str(region_dir)]) == 0
    out = capsys.readouterr().out
    assert "heilongjiang-2018" in out and "heilongjiang-2019" in out and "2019-01-01" in out
    edit(region / Y18, "max_personal_share: 0.10", "max_personal_share: 1.5")
    assert cli.main(["schedules", "validate", str(region)]) == 1
    out = capsys.readouterr().out
    assert f"{region / Y18}: backstop.max_personal_share: rate outside 0–1" in out
    assert "1 defect" in out


def test_settle_refuses_a_bad_folder(
    region: Path, capsysbinary: pytest.CaptureFixture[bytes], examples_dir: Path
) -> None:
    edit(region / C18, "X000001,注射用头孢曲松钠 1g,drug,A,,", "X000001,注射用头孢曲松钠 1g,drug,D,,")
    assert cli.main(["settle", "--schedules", str(region), str(examples_dir / "claims.jsonl")]) == 2
    out, err = capsysbinary.readouterr()
    assert out == b""
    assert f"{region / C18}:2: class".encode() in err


# --------------------------------------------------------------------------- emergency relief (SPEC §4, §5.5)

ER18 = (
    "  hospital_levels: [2, 3]  # 二级以上医疗机构\n  rate: 0.80               # share of the eligible remainder\n"
    "  case_cap: 20000.00         # per claim; null: no cap\n"
    "  annual_pool: 1000000.00   # the fund-year's pool; null: no limit"
)
UNIDENTIFIED = dict(
    CLAIM, patient={"unidentified": True, "temporary_id": "T-1"},
    visit={"type": "inpatient", "admitted": "2018-05-01", "discharged": "2018-05-03", "emergency": True},
    hospital={"id": "H0001", "level": 3},
)


def test_shipped_emergency_relief_sections(schedules: ScheduleSet) -> None:
    v18, v19 = schedules.versions
    assert v18.emergency_relief is not None and v19.emergency_relief is not None
    assert (sorted(v18.emergency_relief.hospital_levels), v18.emergency_relief.rate_bp) == ([2, 3], 8_000)
    assert (v18.emergency_relief.case_cap_fen, v18.emergency_relief.annual_pool_fen) == (2_000_000, 100_000_000)
    assert (v19.emergency_relief.rate_bp, v19.emergency_relief.case_cap_fen) == (9_000, 3_000_000)
    assert v19.emergency_relief.annual_pool_fen == 120_000_000


@pytest.mark.parametrize("key", ["hospital_levels", "rate", "case_cap", "annual_pool"])
def test_every_emergency_relief_key_is_required(region: Path, key: str) -> None:
    lines = [line for line in ER18.split("\n") if not line.startswith(f"  {key}:")]
    edit(region / Y18, ER18, "\n".join(lines))
    one_defect(region, Y18, f"emergency_relief.{key}", "missing key")


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("rate: 0.80 ", "rate: 1.20 ", "emergency_relief.rate"),
        ("case_cap: 20000.00 ", "case_cap: 20000.001 ", "emergency_relief.case_cap"),
        ("levels: [2, 3]  # 二级以上", "levels: [2, 4]  # 二级以上", "emergency_relief.hospital_levels.1"),
        ("annual_pool: 1000000.00", "annual_pool: -1", "emergency_relief.annual_pool"),
    ],
)
def test_emergency_relief_values_are_checked(region: Path, old: str, new: str, key: str) -> None:
    edit(region / Y18, old, new)
    one_defect(region, Y18, key)


def test_emergency_relief_unknown_key(region: Path) -> None:
    edit(region / Y18, "  rate: 0.80 ", "  ratio: 0.5\n  rate: 0.80 ")
    one_defect(region, Y18, "emergency_relief.ratio", "unknown key")


def test_no_charity_fund_may_be_named_emergency_relief(region: Path) -> None:
    edit(region / Y18, "    - id: poverty_relief", "    - id: emergency_relief")
    one_defect(region, Y18, "charity.funds.0.id", "emergency_relief")


def test_null_case_cap_and_pool_are_unlimited(region: Path) -> None:
    edit(region / Y18, ER18, ER18.replace("20000.00 ", "null ").replace("1000000.00", "null").replace("0.80", "1"))
    result = StreamSettler(compile_tables(load_region(region))).settle_lines([json.dumps(UNIDENTIFIED)])[0]
    assert result["payments"]["emergency_relief"] != "0.00"
    amounts = result["amounts"]
    fen = int(amounts["pre_self_paid"].replace(".", "")) + int(amounts["in_scope"].replace(".", ""))
    assert int(result["payments"]["emergency_relief"].replace(".", "")) == fen  # rate 1, nothing caps it


def test_without_the_section_the_fund_pays_nothing(region: Path) -> None:
    section = "emergency_relief:          # 疾病应急救助: emergency care for patients unidentified or unable to pay\n"
    edit(region / Y18, section + ER18, "")
    assert load_region(region).versions[0].emergency_relief is None
    result = StreamSettler(compile_tables(load_region(region))).settle_lines([json.dumps(UNIDENTIFIED)])[0]
    assert result["payments"]["emergency_relief"] == "0.00"
    assert result["hospital_bears"] == result["amounts"]["total"] and result["patient_pays"] == "0.00"
