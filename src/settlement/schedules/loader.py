"""Reads a region folder of fee schedules, strictly.

Every defect is reported with the file and the key path (or the CSV line), and
all defects of a folder are collected before failing, so a policy editor fixes
them in one round.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from settlement.money import FEN_PER_YUAN, RATE_SCALE, decimal_places, decimal_to_scaled

from .folders import CATALOG_FILE, SCHEDULE_FILE, ScheduleError, version_folders
from .models import AdjustmentTypes, ScheduleModel
from .types import (
    AssistanceCategory,
    AssistanceLayer,
    Backstop,
    Band,
    BasicLayer,
    BasicSection,
    CatalogItem,
    CategoryAdjustment,
    CharityFund,
    CriticalLayer,
    CriticalSection,
    DiseaseGroup,
    EmergencyRelief,
    ScheduleSet,
    ScheduleVersion,
    Shares,
    SingleDisease,
    Standard,
)

CATALOG_HEADER = ["code", "name", "kind", "class", "self_pay_ratio", "price_cap"]


class _ExactLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """SafeLoader whose floats are Decimal, built from the text as written.

    On libyaml's parser when PyYAML has it (~10× faster: the schedule files are
    read at every start of `settlement settle` and `serve`); the constructors,
    and so the values and the errors, are the same Python ones either way.
    """


def _decimal_constructor(loader: yaml.SafeLoader, node: yaml.Node) -> Decimal:
    text = str(loader.construct_scalar(node)).replace("_", "")  # type: ignore[arg-type]
    try:
        return Decimal(text)
    except InvalidOperation as exc:  # .inf, .nan
        raise yaml.constructor.ConstructorError(
            None, None, f"not a finite number: {text}", node.start_mark
        ) from exc


_ExactLoader.add_constructor("tag:yaml.org,2002:float", _decimal_constructor)


def _duplicate_key_check(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_ExactLoader.add_constructor("tag:yaml.org,2002:map", _duplicate_key_check)


def _path(loc: tuple[int | str, ...]) -> str:
    # pydantic's own location tags (`function-after[...]`, `nullable[...]`) hold a bracket;
    # schedule keys never do, so a key such as `interest` or `nullable_cap` stays in the path
    parts = [str(p) for p in loc if not (isinstance(p, str) and "[" in p)]
    return ".".join(parts) or "(top level)"


def _format_errors(file: Path, error: ValidationError) -> list[str]:
    defects: list[str] = []
    seen: set[str] = set()
    for item in error.errors():
        loc = tuple(p for p in item["loc"] if p not in ("function-after[_money()]",))
        kind = item["type"]
        if kind == "missing":
            message = "missing key"
        elif kind == "extra_forbidden":
            message = "unknown key"
        elif kind == "value_error":
            message = str(item["msg"]).removeprefix("Value error, ")
        elif kind.endswith("_type") or kind in ("literal_error", "model_type", "is_instance_of"):
            message = f"wrong type: {item['msg']} (got {item.get('input')!r})"
        else:
            message = str(item["msg"])
        # a union (value | null) may report its null branch too; keep the informative one
        key = _path(loc)
        if "none_required" in kind:
            continue
        line = f"{file}: {key}: {message}"
        if line not in seen:
            seen.add(line)
            defects.append(line)
    return defects or [f"{file}: {error}"]


def _read_yaml(file: Path) -> Any:
    try:
        return yaml.load(file.read_text(encoding="utf-8"), Loader=_ExactLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}" if mark else "?"
        raise ScheduleError([f"{file}: {where}: {exc.problem or exc}"]) from exc
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ScheduleError([f"{file}: {exc}"]) from exc


def _catalog_decimal(text: str, what: str, places: int) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise ValueError(f"{what}: not a number: {text!r}") from exc
    if not value.is_finite() or text.strip() != text or (text.startswith(("+", "-")) and value < 0):
        raise ValueError(f"{what}: not a plain number: {text!r}")
    if value < 0:
        raise ValueError(f"{what}: must not be negative: {text}")
    if decimal_places(value) > places:
        raise ValueError(f"{what}: more than {places} decimals: {text}")
    return value


def load_catalog(file: Path) -> tuple[dict[str, CatalogItem], list[str]]:
    """Reads catalog.csv; returns the items and the defects (file:line: column: problem)."""
    defects: list[str] = []
    items: dict[str, CatalogItem] = {}
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        return {}, [f"{file}: {exc}"]
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if header != CATALOG_HEADER:
        return {}, [f"{file}:1: header must be {','.join(CATALOG_HEADER)}, got {','.join(header or [])}"]
    for row in rows:
        line = rows.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        where = f"{file}:{line}"
        if len(row) != len(CATALOG_HEADER):
            defects.append(f"{where}: expected {len(CATALOG_HEADER)} columns, got {len(row)}")
            continue
        code, name, kind, cls, ratio_text, cap_text = row
        try:
            if not code or code.strip() != code:
                raise ValueError("code: must be non-empty without surrounding spaces")
            if code in items:
                raise ValueError(f"code: {code} is listed twice")
            if not name:
                raise ValueError("name: must not be empty")
            if not kind:
                raise ValueError("kind: must not be empty")
            if cls not in ("A", "B", "C"):
                raise ValueError(f"class: must be A, B or C, got {cls!r}")
            ratio_bp: int | None = None
            if cls == "B":
                if not ratio_text:
                    raise ValueError("self_pay_ratio: required for class B")
                ratio = _catalog_decimal(ratio_text, "self_pay_ratio", 4)
                if ratio > 1:
                    raise ValueError(f"self_pay_ratio: rate outside 0–1: {ratio_text}")
                ratio_bp = decimal_to_scaled(ratio, RATE_SCALE)
            elif ratio_text:
                raise ValueError(f"self_pay_ratio: must be empty for class {cls}")
            cap_fen = (
                decimal_to_scaled(_catalog_decimal(cap_text, "price_cap", 2), FEN_PER_YUAN)
                if cap_text
                else None
            )
        except ValueError as exc:
            defects.append(f"{where}: {exc}")
            continue
        items[code] = CatalogItem(code, name, kind, cls, ratio_bp, cap_fen)
    if not items and not defects:
        defects.append(f"{file}: the catalog has no items")
    return items, defects


def _adjustments(raw: Mapping[str, AdjustmentTypes]) -> dict[str, CategoryAdjustment]:
    return {
        category: CategoryAdjustment(
            adj.deductible_reduction, adj.rate_bonus, bool(getattr(adj, "uncapped", False))
        )
        for category, adj in raw.items()
    }


def _shares(raw: Any) -> Shares:
    return Shares(raw.basic, raw.critical_illness, raw.medical_assistance)


def _to_version(model: ScheduleModel, catalog: dict[str, CatalogItem], source: str) -> ScheduleVersion:
    basic_sections: dict[tuple[str, str], BasicSection] = {}
    for scheme in ("resident", "employee"):
        scheme_model = getattr(model.basic, scheme)
        if scheme_model is None:
            continue
        for visit_type in ("inpatient", "outpatient", "chronic_outpatient"):
            section = getattr(scheme_model, visit_type)
            if section is not None:
                basic_sections[(scheme, visit_type)] = BasicSection(
                    dict(section.deductible), dict(section.rate), section.annual_cap
                )
    critical = None
    if model.critical_illness is not None:
        sections = {}
        for scheme in ("resident", "employee"):
            sec = getattr(model.critical_illness, scheme)
            if sec is not None:
                sections[scheme] = CriticalSection(
                    frozenset(sec.visit_types),
                    sec.annual_deductible,
                    tuple(Band(b.up_to, b.rate) for b in sec.bands),
                    sec.annual_cap,
                )
        critical = CriticalLayer(sections, _adjustments(model.critical_illness.category_adjustments))
    assistance = None
    if model.medical_assistance is not None:
        assistance = AssistanceLayer(
            frozenset(model.medical_assistance.visit_types),
            {
                cat: AssistanceCategory(c.annual_deductible, c.rate, c.annual_cap)
                for cat, c in model.medical_assistance.categories.items()
            },
        )
    funds = tuple(
        CharityFund(
            f.id,
            f.name,
            frozenset(f.categories),
            frozenset(f.visit_types),
            None if f.disease_groups is None else frozenset(f.disease_groups),
            f.rate,
            f.annual_cap_per_person,
            f.annual_pool,
        )
        for f in (model.charity.funds if model.charity else [])
    )
    backstop = None
    if model.backstop is not None:
        b = model.backstop
        backstop = Backstop(
            frozenset(b.categories), frozenset(b.visit_types), frozenset(b.hospital_levels),
            b.max_personal_share,
        )
    single = None
    if model.single_disease is not None:
        s = model.single_disease
        single = SingleDisease(
            frozenset(s.schemes),
            frozenset(s.categories),
            frozenset(s.hospital_levels),
            _shares(s.shares),
            tuple(
                DiseaseGroup(
                    g.id,
                    g.name,
                    tuple(g.icd10),
                    frozenset(g.visit_types),
                    g.min_age,
                    g.max_age,
                    _shares(g.shares) if g.shares is not None else None,
                    tuple(
                        Standard(
                            st.treatment, st.amount, st.per,
                            tuple(st.icd10) if st.icd10 is not None else None,
                            st.min_age, st.max_age,
                        )
                        for st in g.standards
                    ),
                )
                for g in s.groups
            ),
        )
    emergency = None
    if model.emergency_relief is not None:
        er = model.emergency_relief
        emergency = EmergencyRelief(frozenset(er.hospital_levels), er.rate, er.case_cap, er.annual_pool)
    return ScheduleVersion(
        id=model.id,
        region=model.region,
        name=model.name,
        effective_from=model.effective_from,
        categories=tuple(model.categories),
        basic=BasicLayer(basic_sections, _adjustments(model.basic.category_adjustments)),
        critical_illness=critical,
        medical_assistance=assistance,
        charity_funds=funds,
        backstop=backstop,
        single_disease=single,
        catalog=catalog,
        references=tuple({k: v for k, v in r.model_dump().items() if v is not None} for r in model.references),
        source=source,
        emergency_relief=emergency,
    )


def load_version(folder: Path) -> ScheduleVersion:
    """One version folder (schedule.yaml + catalog.csv)."""
    schedule_file = folder / SCHEDULE_FILE
    catalog_file = folder / CATALOG_FILE
    defects: list[str] = []
    model: ScheduleModel | None = None
    if not schedule_file.is_file():
        defects.append(f"{schedule_file}: missing file")
    else:
        raw = _read_yaml(schedule_file)
        if not isinstance(raw, dict):
            defects.append(f"{schedule_file}: (top level): expected a mapping of keys")
        else:
            try:
                model = ScheduleModel.model_validate(raw)
            except ValidationError as exc:
                defects.extend(_format_errors(schedule_file, exc))
    catalog: dict[str, CatalogItem] = {}
    if not catalog_file.is_file():
        defects.append(f"{catalog_file}: missing file")
    else:
        catalog, catalog_defects = load_catalog(catalog_file)
        defects.extend(catalog_defects)
    if defects or model is None:
        raise ScheduleError(defects)
    return _to_version(model, catalog, str(folder))


def load_region(region_dir: str | Path) -> ScheduleSet:
    """Every version folder below a region folder, validated together."""
    root = Path(region_dir)
    folders = version_folders(root)
    versions: list[ScheduleVersion] = []
    defects: list[str] = []
    for folder in folders:
        try:
            versions.append(load_version(folder))
        except ScheduleError as exc:
            defects.extend(exc.defects)
    by_date: dict[Any, ScheduleVersion] = {}
    by_id: dict[str, ScheduleVersion] = {}
    for version in versions:
        file = Path(version.source) / SCHEDULE_FILE
        other = by_date.get(version.effective_from)
        if other is not None:
            defects.append(
                f"{file}: effective_from: {version.effective_from} is also the date of "
                f"{Path(other.source) / SCHEDULE_FILE} (two versions with one date)"
            )
        other = by_id.get(version.id)
        if other is not None:
            defects.append(f"{file}: id: {version.id} is also the id of {Path(other.source) / SCHEDULE_FILE}")
        by_date.setdefault(version.effective_from, version)
        by_id.setdefault(version.id, version)
    if defects:
        raise ScheduleError(defects)
    versions.sort(key=lambda v: v.effective_from)
    fund_ids: list[str] = []
    for version in versions:
        for fund in version.charity_funds:
            if fund.id not in fund_ids:
                fund_ids.append(fund.id)
    return ScheduleSet(str(root), tuple(versions), tuple(fund_ids))
