"""The review flags' rules (REVIEW_RULES.md): their configuration and their evaluation.

The thresholds are configuration, not code: ``settlement/review_rules.yaml`` shipped
in the package, or the file named by ``SETTLEMENT_REVIEW_RULES``, read strictly
(every rule present, no unknown key, each defect named by file and key). The
evaluation is pure: claim rules look at one settlement (its amounts, its stored
request body and result); person rules at one person's settlements and registry
periods. Each flag carries the figures that made it fire and the threshold in force.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from settlement.money import FEN_PER_YUAN, format_fen

BUNDLED = Path(__file__).resolve().parents[2] / "review_rules.yaml"

NAMES_ZH = {
    "readmission": "分解住院",
    "frequent_stays": "频繁住院",
    "bed_days_exceed_stay": "床位天数超住院天数",
    "duplicate_line": "重复收费",
    "over_price_cap": "超限价收费",
    "high_self_pay_share": "自费比例过高",
    "high_total": "高额费用",
    "fixed_standard_overrun": "单病种超支",
    "backstop_paid": "兜底支付",
    "emergency_unidentified": "身份不明应急救助",
    "emergency_unable_to_pay": "无力支付应急救助",
    "category_changed_after": "救助对象身份变更",
    "resettled_after_reversal": "撤销后重新结算",
}
RULES = tuple(NAMES_ZH)
PERSON_RULES = ("readmission", "frequent_stays", "category_changed_after", "resettled_after_reversal")
"""Rules that look at the person's other settlements or registry: evaluated again when those change."""
CLAIM_RULES = tuple(rule for rule in RULES if rule not in PERSON_RULES)
"""Rules that look at the settlement alone: evaluated once per settlement (and again when the rules change)."""


class ReviewRulesError(Exception):
    """The rules file is not valid; ``defects`` name the file and key of each problem."""

    def __init__(self, defects: list[str]) -> None:
        super().__init__("\n".join(defects))
        self.defects = defects


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    enabled: bool


class Readmission(_Rule):
    days: int = Field(ge=0, le=366)


class FrequentStays(_Rule):
    stays: int = Field(ge=2, le=366)
    window_days: int = Field(ge=1, le=366)


class BedDays(_Rule):
    bed_fee_codes: list[str] = Field(min_length=1)


class SelfPayShare(_Rule):
    model_config = ConfigDict(extra="forbid", strict=False)
    share: Decimal = Field(gt=0, lt=1)

    @field_validator("share", mode="before")
    @classmethod
    def _exact(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
            raise ValueError(f"must be a decimal such as 0.20, got {value!r}")
        return value


class HighTotal(_Rule):
    model_config = ConfigDict(extra="forbid", strict=False)
    amount: Decimal = Field(gt=0)

    @field_validator("amount", mode="before")
    @classmethod
    def _yuan(cls, value: Any) -> Any:
        if not isinstance(value, str | Decimal | int) or isinstance(value, bool):
            raise ValueError(f"must be yuan with two decimals such as \"100000.00\", got {value!r}")
        amount = Decimal(str(value))
        if amount.as_tuple().exponent < -2:  # type: ignore[operator]
            raise ValueError(f"more than two decimals: {value}")
        return amount


class RulesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    readmission: Readmission
    frequent_stays: FrequentStays
    bed_days_exceed_stay: BedDays
    duplicate_line: _Rule
    over_price_cap: _Rule
    high_self_pay_share: SelfPayShare
    high_total: HighTotal
    fixed_standard_overrun: _Rule
    backstop_paid: _Rule
    emergency_unidentified: _Rule
    emergency_unable_to_pay: _Rule
    category_changed_after: _Rule
    resettled_after_reversal: _Rule


@dataclass(frozen=True)
class ReviewRules:
    """The rules in force: thresholds, where they came from, and a digest that changes with them."""

    config: RulesFile
    source: str
    digest: str

    def enabled(self, rule: str) -> bool:
        return bool(getattr(self.config, rule).enabled)

    def threshold(self, rule: str) -> dict[str, Any]:
        """The rule's thresholds as flags and the API show them (money in yuan, shares as decimals)."""
        values = getattr(self.config, rule).model_dump(exclude={"enabled"})
        out: dict[str, Any] = {}
        for key, value in values.items():
            if rule == "high_total" and key == "amount":
                out[key] = format_fen(self.high_total_fen)
            elif isinstance(value, Decimal):
                out[key] = str(value)
            else:
                out[key] = value
        return out

    @property
    def high_total_fen(self) -> int:
        return int(self.config.high_total.amount * FEN_PER_YUAN)

    def view(self) -> list[dict[str, Any]]:
        return [
            {
                "rule": rule,
                "name": NAMES_ZH[rule],
                "kind": "claim" if rule in CLAIM_RULES else "person",
                "enabled": self.enabled(rule),
                "threshold": self.threshold(rule),
            }
            for rule in RULES
        ]


def load_rules(path: Path | None = None) -> ReviewRules:
    """The rules of ``path`` (default: the bundled file), strictly; ReviewRulesError naming file and key."""
    from settlement.schedules import ScheduleError
    from settlement.schedules.loader import _format_errors, _read_yaml

    file = path or BUNDLED
    try:
        data = _read_yaml(file)
    except ScheduleError as exc:
        raise ReviewRulesError(exc.defects) from None
    if not isinstance(data, dict):
        raise ReviewRulesError([f"{file}: (top level): must be a mapping of rule names to their settings"])
    try:
        config = RulesFile.model_validate(data)
    except ValidationError as exc:
        raise ReviewRulesError(_format_errors(file, exc)) from None
    canonical = json.dumps(config.model_dump(mode="json"), sort_keys=True).encode()
    return ReviewRules(config=config, source=str(file), digest=hashlib.sha256(canonical).hexdigest()[:16])


@lru_cache(maxsize=4)
def rules_at(path: str | None) -> ReviewRules:
    """load_rules, once per path for the life of the process (a changed file needs a restart)."""
    return load_rules(Path(path) if path else None)


# -- evaluation --------------------------------------------------------------------


@dataclass
class ClaimFacts:
    """What the claim rules read of one settlement."""

    seq: int
    category: str
    visit_type: str
    admitted: dt.date
    discharged: dt.date
    pathway: str
    fen: Mapping[str, int]
    """The settlement's amounts in fen by name (total, fully_self_paid, …)."""
    request_body: str
    emergency_relief: str | None
    """The stored result's ``payments.emergency_relief`` (yuan), None when it has none."""


@dataclass
class Stay:
    """What the person rules read of one settlement of the person."""

    seq: int
    settlement_id: str
    hospital_id: str
    claim_id: str
    status: str
    visit_type: str
    category: str
    admitted: dt.date
    discharged: dt.date
    settled_at: dt.datetime
    reversed_at: dt.datetime | None


@dataclass
class Period:
    category: str
    valid_from: dt.date
    valid_to: dt.date | None


Fired = dict[tuple[int, str], dict[str, Any]]
"""(settlement seq, rule) -> the figures that made it fire."""


def _quantity(value: Any) -> Decimal:
    return Decimal(str(value)) if not isinstance(value, Decimal) else value


def _yuan_fen(text: Any) -> int:
    return int(Decimal(str(text)) * FEN_PER_YUAN)


@dataclass
class _Body:
    patient: Mapping[str, Any] = field(default_factory=dict)
    items: Sequence[Mapping[str, Any]] = ()


def _body(raw: str) -> _Body:
    # the body was validated when it was settled; what is read here is read leniently
    data = orjson.loads(raw)
    if not isinstance(data, dict):
        return _Body()
    patient = data.get("patient")
    items = data.get("items")
    return _Body(patient if isinstance(patient, dict) else {}, items if isinstance(items, list) else [])


def claim_flags(rules: ReviewRules, facts: ClaimFacts) -> dict[str, dict[str, Any]]:
    """The claim rules that fire on one settlement: rule -> figures."""
    out: dict[str, dict[str, Any]] = {}
    fen = facts.fen
    on = rules.enabled
    if on("over_price_cap") and fen["over_limit"] > 0:
        out["over_price_cap"] = {"over_limit": format_fen(fen["over_limit"])}
    if on("high_total") and fen["total"] > rules.high_total_fen:
        out["high_total"] = {"total": format_fen(fen["total"])}
    if on("backstop_paid") and fen["backstop"] > 0:
        out["backstop_paid"] = {"backstop": format_fen(fen["backstop"])}
    if on("fixed_standard_overrun") and facts.pathway == "single_disease" and fen["hospital_bears"] > 0:
        out["fixed_standard_overrun"] = {"hospital_bears": format_fen(fen["hospital_bears"]), "pathway": facts.pathway}
    if on("high_self_pay_share") and facts.category != "none" and fen["total"] > 0:
        share = rules.config.high_self_pay_share.share
        if Decimal(fen["fully_self_paid"]) > share * fen["total"]:
            out["high_self_pay_share"] = {
                "fully_self_paid": format_fen(fen["fully_self_paid"]),
                "total": format_fen(fen["total"]),
                "share": str((Decimal(fen["fully_self_paid"]) / fen["total"]).quantize(Decimal("0.0001"))),
                "category": facts.category,
            }
    wants_body = any(
        on(r) for r in ("bed_days_exceed_stay", "duplicate_line", "emergency_unidentified", "emergency_unable_to_pay")
    )
    if not wants_body:
        return out
    body = _body(facts.request_body)
    if on("duplicate_line"):
        priced = [(number, item) for number, item in enumerate(body.items, start=1)
                  if isinstance(item, dict) and "code" in item and "unit_price" in item]
        repeats = Counter(str(item["code"]) for _n, item in priced)
        lines: dict[tuple[str, Decimal], list[int]] = defaultdict(list)
        for number, item in priced:
            if repeats[str(item["code"])] > 1:  # a line can repeat only a line of the same code
                lines[(str(item["code"]), _quantity(item["unit_price"]))].append(number)
        repeated = [
            {"code": code, "unit_price": format_fen(int(price * FEN_PER_YUAN)), "lines": numbers}
            for (code, price), numbers in lines.items()
            if len(numbers) > 1
        ]
        if repeated:
            out["duplicate_line"] = {"repeated": repeated}
    if on("bed_days_exceed_stay"):
        codes = set(rules.config.bed_days_exceed_stay.bed_fee_codes)
        bed_days = sum(
            (_quantity(item["quantity"]) for item in body.items
             if isinstance(item, dict) and item.get("code") in codes and "quantity" in item),
            Decimal(0),
        )
        stay_days = (facts.discharged - facts.admitted).days + 1
        if bed_days > stay_days:
            out["bed_days_exceed_stay"] = {
                "bed_days": format(bed_days.normalize(), "f"),
                "stay_days": stay_days,
                "admitted": facts.admitted.isoformat(),
                "discharged": facts.discharged.isoformat(),
            }
    unidentified = body.patient.get("unidentified") is True
    if on("emergency_unidentified") and unidentified:
        out["emergency_unidentified"] = {
            "temporary_id": body.patient.get("temporary_id"),
            "emergency_relief": facts.emergency_relief,
        }
    if on("emergency_unable_to_pay") and not unidentified and body.patient.get("unable_to_pay") is True:
        relief = facts.emergency_relief
        if relief is not None and _yuan_fen(relief) > 0:
            out["emergency_unable_to_pay"] = {"emergency_relief": relief}
    return out


def person_flags(rules: ReviewRules, stays: Sequence[Stay], periods: Sequence[Period] | None) -> Fired:
    """The person rules that fire on one person's settlements (all of them, settled or reversed).

    Readmissions and frequent stays count settled inpatient claims only (a reversed one was
    undone); ``periods`` is the person's registry now (None: not registered any more).
    """
    out: Fired = {}
    inpatient = sorted(
        (s for s in stays if s.status == "settled" and s.visit_type == "inpatient"), key=lambda s: (s.admitted, s.seq)
    )
    if rules.enabled("readmission"):
        limit = rules.config.readmission.days
        for stay in inpatient:
            before = [
                p for p in inpatient
                if p.seq != stay.seq and p.hospital_id == stay.hospital_id and p.discharged <= stay.admitted
                and (p.admitted, p.seq) < (stay.admitted, stay.seq)
            ]
            if not before:
                continue
            previous = max(before, key=lambda p: (p.discharged, p.seq))
            gap = (stay.admitted - previous.discharged).days
            if gap <= limit:
                out[(stay.seq, "readmission")] = {
                    "days_since_discharge": gap,
                    "previous_settlement_id": previous.settlement_id,
                    "previous_discharged": previous.discharged.isoformat(),
                    "admitted": stay.admitted.isoformat(),
                    "hospital_id": stay.hospital_id,
                }
    if rules.enabled("frequent_stays"):
        need = rules.config.frequent_stays.stays
        window = rules.config.frequent_stays.window_days
        for i, stay in enumerate(inpatient):
            start = stay.admitted - dt.timedelta(days=window - 1)
            within = [p for p in inpatient[: i + 1] if p.admitted >= start]
            if len(within) >= need:
                out[(stay.seq, "frequent_stays")] = {
                    "stays": len(within),
                    "from": within[0].admitted.isoformat(),
                    "to": stay.admitted.isoformat(),
                    "settlement_ids": [p.settlement_id for p in within],
                }
    if rules.enabled("resettled_after_reversal"):
        reversed_ = [s for s in stays if s.status == "reversed" and s.reversed_at is not None]
        for stay in stays:
            if stay.status != "settled":
                continue
            earlier = [
                r for r in reversed_
                if r.seq != stay.seq and r.hospital_id == stay.hospital_id and r.admitted == stay.admitted
                and r.discharged == stay.discharged and r.reversed_at is not None and r.reversed_at <= stay.settled_at
            ]
            if earlier:
                last = max(earlier, key=lambda r: (r.reversed_at, r.seq))
                out[(stay.seq, "resettled_after_reversal")] = {
                    "reversed_settlement_id": last.settlement_id,
                    "reversed_claim_id": last.claim_id,
                    "reversed_at": last.reversed_at.isoformat() if last.reversed_at else None,
                }
    if rules.enabled("category_changed_after"):
        for stay in stays:
            now = category_on(periods, stay.admitted)
            if now != stay.category:
                out[(stay.seq, "category_changed_after")] = {
                    "settled_category": stay.category,
                    "registry_category": now,
                    "admitted": stay.admitted.isoformat(),
                }
    return out


def category_on(periods: Iterable[Period] | None, day: dt.date) -> str | None:
    """The registry's category on a day, or None when no period covers it."""
    for p in periods or ():
        if p.valid_from <= day and (p.valid_to is None or day <= p.valid_to):
            return p.category
    return None
