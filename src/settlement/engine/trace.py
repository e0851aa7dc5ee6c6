"""A reviewer's account of one settled claim, layer by layer.

Built from the numbers the kernel recorded while it settled (base,
deductible, rate or band, cap remaining, amount) plus the schedule keys each
layer read, so a civil-affairs reviewer can check every step by hand.
"""

from __future__ import annotations

from typing import Any

from settlement.money import RATE_SCALE, format_fen, format_rate
from settlement.schedules.types import CATEGORIES, SCHEMES, VISIT_TYPES

from . import kernel as K
from .batch import EMERGENCY, UNABLE_TO_PAY, UNIDENTIFIED, BatchResult, ClaimBatch
from .tables import UNLIMITED, Tables


def _cap(value: int) -> str:
    return "no cap" if value >= UNLIMITED // 2 or value < 0 else format_fen(value)


def render_trace(result: BatchResult, batch: ClaimBatch, i: int, tables: Tables) -> list[dict[str, Any]]:
    """The trace of claim i as [{"layer", "text", "keys"}], in the order the layers ran."""
    if result.trace is None:
        raise ValueError("settle(..., trace=True) records the numbers a trace needs")
    t = result.trace[i]
    v = int(batch.version[i])
    version = tables.schedules.versions[v]
    scheme = SCHEMES[int(batch.scheme[i])]
    category = CATEGORIES[int(batch.category[i])]
    visit = VISIT_TYPES[int(batch.visit_type[i])]
    level = int(batch.level[i])
    flags = int(batch.claim_flags()[i])
    unidentified = bool(flags & UNIDENTIFIED)
    f = format_fen
    steps: list[dict[str, Any]] = []

    def step(layer: str, text: str, *keys: str) -> None:
        steps.append({"layer": layer, "text": text, "keys": list(keys)})

    step(
        "bill",
        f"total {f(int(result.total[i]))} = fully self-paid {f(int(result.fully_self_paid[i]))}"
        f" + over limit {f(int(result.over_limit[i]))} + pre-self-paid {f(int(result.pre_self_paid[i]))}"
        f" + in scope {f(int(result.in_scope[i]))}; schedule {version.id}"
        f" (in force from {version.effective_from}), policy year {int(batch.policy_year[i])}",
        f"{version.id}/catalog.csv",
    )
    group = int(result.group[i])
    sd = version.single_disease
    group_id = sd.groups[group].id if sd is not None and group >= 0 else None
    if result.pathway_fixed[i]:
        assert sd is not None and group_id is not None
        g = sd.groups[group]
        st = g.standards[int(result.standard[i])]
        shares = g.shares or sd.shares
        shares_key = f"single_disease.groups[{group_id}].shares" if g.shares else "single_disease.shares"
        sessions = int(batch.sessions[i])
        standard = st.amount_fen * (sessions if st.per == "session" else 1)
        step(
            "pathway",
            f"fixed standard for {group_id} ({g.name}), treatment {st.treatment}: "
            f"{f(st.amount_fen)} per {st.per}" + (f" × {sessions} sessions" if st.per == "session" else "")
            + f" = {f(standard)}; base = min(total, standard) = {f(int(result.base[i]))};"
            f" hospital bears {f(int(result.hospital_bears[i]))}; outside the annual caps",
            f"single_disease.groups[{group_id}].standards",
        )
        step("basic", f"{format_rate(shares.basic_bp)} of the base = {f(int(result.basic[i]))}", f"{shares_key}.basic")
        step(
            "critical_illness",
            f"{format_rate(shares.critical_illness_bp)} of the base = {f(int(result.critical_illness[i]))}",
            f"{shares_key}.critical_illness",
        )
        step(
            "medical_assistance",
            f"{format_rate(shares.medical_assistance_bp)} of the base = {f(int(result.medical_assistance[i]))}",
            f"{shares_key}.medical_assistance",
        )
    elif unidentified:
        reason = "standard pathway: an unidentified patient (身份不明) has no scheme, category or age"
        if group_id is not None:
            reason += f" (diagnosis group {group_id})"
        step("pathway", f"{reason}; base = total {f(int(result.base[i]))}")
        for layer in ("basic", "critical_illness", "medical_assistance"):
            step(layer, "does not apply to an unidentified patient: pays 0")
    else:
        reason = "standard pathway"
        if group_id is not None and batch.treatment[i] < 0:
            reason += f" (diagnosis group {group_id}, but no treatment was given)"
        elif group_id is not None:
            reason += f" (diagnosis group {group_id}; the fixed standard does not apply to this claim)"
        step("pathway", f"{reason}; base = total {f(int(result.base[i]))}")
        basic_key = f"basic.{scheme}.{visit}"
        if (scheme, visit) in version.basic.sections:
            step(
                "basic",
                f"in scope {f(int(result.in_scope[i]))}; deductible {f(int(t[K.T_BASIC_D]))} for level {level}"
                f" (claim's deductible {f(int(result.deductible[i]))}); rate {format_rate(int(t[K.T_BASIC_RATE]))}"
                f" → {f(int(t[K.T_BASIC_WANT]))}; annual cap remaining {_cap(int(t[K.T_BASIC_REM]))};"
                f" pays {f(int(result.basic[i]))}",
                f"{basic_key}.deductible.{level}",
                f"{basic_key}.rate.{level}",
                f"{basic_key}.annual_cap",
                f"basic.category_adjustments.{category}",
            )
        else:
            step("basic", f"no section {basic_key}: pays 0")
        ci = version.critical_illness
        if ci is not None and scheme in ci.sections and visit in ci.sections[scheme].visit_types:
            bands = ", ".join(
                f"to {'∞' if b.up_to_fen is None else f(b.up_to_fen)} at {format_rate(b.rate_bp)}"
                for b in ci.sections[scheme].bands
            )
            step(
                "critical_illness",
                f"adds {f(int(t[K.T_CRIT_B]))} to the year's base: {f(int(t[K.T_CRIT_BEFORE]))} →"
                f" {f(int(t[K.T_CRIT_AFTER]))}; annual deductible {f(int(t[K.T_CRIT_D]))}; bands {bands}"
                f" (plus the category's bonus); payable {f(int(t[K.T_CRIT_PAY]))}; annual cap remaining"
                f" {_cap(int(t[K.T_CRIT_REM]))}; pays {f(int(result.critical_illness[i]))}",
                f"critical_illness.{scheme}.annual_deductible",
                f"critical_illness.{scheme}.bands",
                f"critical_illness.{scheme}.annual_cap",
                f"critical_illness.category_adjustments.{category}",
            )
        else:
            step("critical_illness", f"does not apply to {scheme} {visit} claims: pays 0")
        ma = version.medical_assistance
        if ma is not None and category in ma.categories and visit in ma.visit_types:
            entry = ma.categories[category]
            step(
                "medical_assistance",
                f"adds {f(int(t[K.T_ASSIST_B]))} to the year's base: {f(int(t[K.T_ASSIST_BEFORE]))} →"
                f" {f(int(t[K.T_ASSIST_AFTER]))}; annual deductible {f(entry.annual_deductible_fen)};"
                f" rate {format_rate(entry.rate_bp)}; payable {f(int(t[K.T_ASSIST_PAY]))}; annual cap"
                f" remaining {_cap(int(t[K.T_ASSIST_REM]))}; pays {f(int(result.medical_assistance[i]))}",
                f"medical_assistance.categories.{category}",
            )
        else:
            step("medical_assistance", f"does not apply to category {category}, {visit}: pays 0")
    cols = tables.schedules.fund_ids
    for slot, fund in enumerate(version.charity_funds):
        col = cols.index(fund.id)
        key = f"charity.funds[{fund.id}]"
        if unidentified:
            step("charity", f"{fund.id}: does not apply to an unidentified patient", key)
            continue
        if not result.charity_eligible[i, col]:
            step("charity", f"{fund.id}: not eligible (category, visit type or diagnosis group)", key)
            continue
        t0 = K.T_FUNDS + slot * K.T_PER_FUND
        step(
            "charity",
            f"{fund.id}: remaining {f(int(t[t0]))} × {format_rate(fund.rate_bp)} = {f(int(t[t0 + 1]))};"
            f" person's annual cap remaining {_cap(int(t[t0 + 2]))}; pool remaining {_cap(int(t[t0 + 3]))};"
            f" pays {f(int(result.charity_by_fund[i, col]))}",
            f"{key}.rate",
            f"{key}.annual_cap_per_person",
            f"{key}.annual_pool",
        )
    steps.append(_emergency_step(result, batch, i, version, flags, level))
    bs = version.backstop
    if unidentified:
        step("backstop", "does not apply to an unidentified patient: pays 0", "backstop")
    elif bs is not None and int(result.backstop[i]) + int(t[K.T_BACK_R]) + int(t[K.T_BACK_L]) > 0:
        step(
            "backstop",
            f"remaining {f(int(t[K.T_BACK_R]))}; personal share limit {format_rate(bs.max_personal_share_bp)}"
            f" of the base = {f(int(t[K.T_BACK_L]))}; pays {f(int(result.backstop[i]))}",
            "backstop.max_personal_share",
        )
    else:
        step("backstop", f"does not apply (category {category}, {visit}, level {level}): pays 0", "backstop")
    if unidentified:
        step(
            "patient",
            f"nobody to ask: patient pays 0.00; hospital bears total − emergency relief ="
            f" {f(int(result.hospital_bears[i]))}",
        )
    else:
        step(
            "patient",
            f"patient pays {f(int(result.patient_pays[i]))}; hospital bears {f(int(result.hospital_bears[i]))}",
        )
    assert RATE_SCALE == 10_000
    return steps


def _emergency_step(
    result: BatchResult, batch: ClaimBatch, i: int, version: Any, flags: int, level: int
) -> dict[str, Any]:
    """The emergency relief layer (疾病应急救助, SPEC §5.5) in words: why it applies or not, and its numbers."""
    f = format_fen
    er = version.emergency_relief
    keys: list[str]
    who = "an unidentified patient" if flags & UNIDENTIFIED else "a patient unable to pay"
    if er is None:
        text, keys = "the schedule has no emergency_relief section: pays 0", []
    elif not flags & EMERGENCY:
        text, keys = "not an emergency visit (visit.emergency): pays 0", []
    elif not flags & (UNABLE_TO_PAY | UNIDENTIFIED):
        text, keys = "the patient is neither unidentified nor unable to pay: pays 0", []
    elif level not in er.hospital_levels:
        text, keys = f"hospital level {level} is not listed: pays 0", ["emergency_relief.hospital_levels"]
    else:
        t = result.trace[i] if result.trace is not None else None
        assert t is not None
        fixed = bool(result.pathway_fixed[i])
        eligible = (
            f"remaining {f(int(t[K.T_ER_R]))}" if fixed else
            f"min(remaining {f(int(t[K.T_ER_R]))}, in scope + pre-self-paid"
            f" {f(int(result.in_scope[i]) + int(result.pre_self_paid[i]))})"
        )
        case_cap = "no case cap" if er.case_cap_fen is None else f"case cap {f(er.case_cap_fen)}"
        text = (
            f"emergency care of {who}: {eligible} = {f(int(t[K.T_ER_E]))} × {format_rate(er.rate_bp)}"
            f" = {f(int(t[K.T_ER_PAY]))}; {case_cap}; pool remaining {_cap(int(t[K.T_ER_POOL_REM]))};"
            f" pays {f(int(result.emergency_relief[i]))}"
        )
        keys = ["emergency_relief.rate", "emergency_relief.case_cap", "emergency_relief.annual_pool"]
    return {"layer": "emergency_relief", "text": text, "keys": keys}
