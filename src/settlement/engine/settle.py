"""The engine's entry point: a columnar batch in, a columnar result out.

The steps follow SPEC §5 in order. Line items (§5.1), the pathway (§5.2) and
the fixed-standard shares (§5.4) depend on the claim alone and are computed
vectorised over the whole batch; everything that depends on earlier claims
(§5.3, §5.5) runs in the compiled kernel, in claim order. A counter settles a
batch of one through the very same function.
"""

from __future__ import annotations

import numpy as np

from settlement.money import RATE_SCALE, mul_rate, round_half_up_div
from settlement.schedules.types import SCHEMES, CATEGORIES, VISIT_TYPES

from . import kernel
from .batch import NO_STANDARD, OK, Accumulators, BatchResult, ClaimBatch, I64, B8
from .tables import CLASS_A, CLASS_B, CLASS_C, Tables

AGE_MAX = 10_000


def _segment_sum(values: I64, starts: I64) -> I64:
    """Per-claim sums of line values; exact in int64 (no float weights)."""
    if values.shape[0] == 0:
        return np.zeros(starts.shape[0], dtype=np.int64)
    return np.add.reduceat(values, starts).astype(np.int64, copy=False)


def line_parts(batch: ClaimBatch, tables: Tables) -> tuple[I64, I64, I64, I64, I64]:
    """§5.1: per claim total, fully_self_paid, over_limit, pre_self_paid, in_scope."""
    item = batch.line_item
    qty = batch.line_qty
    price = batch.line_price
    # qty and price are both scaled 10^4 (yuan); their product is 10^-6 fen
    amount = round_half_up_div(qty * price, 1_000_000)
    cap = tables.item_cap_fen[item]
    over_cap = (cap >= 0) & (price > cap * 100)
    capped = np.where(over_cap, round_half_up_div(qty * np.where(over_cap, cap, 0), 10_000), amount)
    cls = tables.item_class[item]
    pre = np.where(cls == CLASS_B, mul_rate(capped, tables.item_ratio_bp[item]), 0)
    starts = batch.line_start[:-1]
    over_limit = _segment_sum(amount - capped, starts)
    fully = _segment_sum(np.where(cls == CLASS_C, capped, 0), starts)
    pre_self = _segment_sum(pre, starts)
    in_scope = _segment_sum(np.where(cls == CLASS_C, 0, capped - pre), starts)
    total = fully + over_limit + pre_self + in_scope
    assert CLASS_A == 0
    return total, fully, over_limit, pre_self, in_scope


def _icd_matches(code: str, patterns: tuple[str, ...] | None) -> bool:
    """§3: the trimmed, upper-cased code starts with a pattern (upper-cased)."""
    if patterns is None:
        return True
    normalized = code.strip().upper()
    return any(normalized.startswith(p.strip().upper()) for p in patterns)


def classify(batch: ClaimBatch, tables: Tables) -> tuple[I64, B8, I64, I64]:
    """§5.2: diagnosis group, fixed-standard pathway, standard index, engine error.

    Evaluated once per distinct diagnosis of each version, then broadcast.
    """
    n = len(batch)
    group = np.full(n, -1, dtype=np.int64)
    fixed = np.zeros(n, dtype=np.bool_)
    standard = np.full(n, -1, dtype=np.int64)
    error = np.zeros(n, dtype=np.int64)
    treatment_ids = {value: i for i, value in enumerate(batch.treatment_values)}
    for v, version in enumerate(tables.schedules.versions):
        sd = version.single_disease
        if sd is None or not sd.groups:
            continue
        rows = np.nonzero(batch.version == v)[0]
        if rows.size == 0:
            continue
        distinct, inverse = np.unique(batch.diagnosis[rows], return_inverse=True)
        codes = [batch.diagnosis_values[d] for d in distinct]
        age = batch.age[rows][:, None]
        g_match = np.array(
            [[_icd_matches(code, g.icd10) for g in sd.groups] for code in codes], dtype=np.bool_
        ).reshape(len(codes), len(sd.groups))
        g_min = np.array([-1 if g.min_age is None else g.min_age for g in sd.groups])
        g_max = np.array([AGE_MAX if g.max_age is None else g.max_age for g in sd.groups])
        found = g_match[inverse] & (age >= g_min) & (age <= g_max)
        has_group = found.any(axis=1)
        first = np.where(has_group, found.argmax(axis=1), -1)
        group[rows] = first

        vt_ok = np.array(
            [[vt in g.visit_types for vt in VISIT_TYPES] for g in sd.groups], dtype=np.bool_
        )
        scheme_ok = np.array([s in sd.schemes for s in SCHEMES])
        cat_ok = np.array([c in sd.categories for c in CATEGORIES])
        level_ok = np.array([lv in sd.hospital_levels for lv in range(4)])
        treat = batch.treatment[rows]
        eligible = (
            has_group
            & scheme_ok[batch.scheme[rows]]
            & cat_ok[batch.category[rows]]
            & level_ok[batch.level[rows]]
            & vt_ok[np.maximum(first, 0), batch.visit_type[rows]]
            & (treat >= 0)
        )
        if not eligible.any():
            continue
        # standards of every group, flattened in schedule order
        flat = [(gi, si, st) for gi, g in enumerate(sd.groups) for si, st in enumerate(g.standards)]
        s_group = np.array([gi for gi, _, _ in flat])
        s_index = np.array([si for _, si, _ in flat])
        s_treat = np.array([treatment_ids.get(st.treatment, -2) for _, _, st in flat])
        s_match = np.array(
            [[_icd_matches(code, st.icd10) for _, _, st in flat] for code in codes], dtype=np.bool_
        ).reshape(len(codes), len(flat))
        s_min = np.array([-1 if st.min_age is None else st.min_age for _, _, st in flat])
        s_max = np.array([AGE_MAX if st.max_age is None else st.max_age for _, _, st in flat])
        fits = (
            (s_group == first[:, None])
            & (s_treat == treat[:, None])
            & s_match[inverse]
            & (age >= s_min)
            & (age <= s_max)
        )
        has_standard = fits.any(axis=1)
        chosen = fits.argmax(axis=1)
        fixed[rows] = eligible & has_standard
        standard[rows] = np.where(eligible & has_standard, s_index[chosen], -1)
        error[rows] = np.where(eligible & ~has_standard, NO_STANDARD, OK)
    return group, fixed, standard, error


def _fixed_shares(
    batch: ClaimBatch, tables: Tables, total: I64, group: I64, fixed: B8, standard: I64
) -> tuple[I64, I64, I64, I64]:
    """§5.4: base and the three insurance shares of fixed-standard claims."""
    n = len(batch)
    amount = np.zeros(n, dtype=np.int64)
    per_session = np.zeros(n, dtype=np.bool_)
    for v, version in enumerate(tables.schedules.versions):
        sd = version.single_disease
        if sd is None:
            continue
        rows = np.nonzero(fixed & (batch.version == v))[0]
        if rows.size == 0:
            continue
        width = max(len(g.standards) for g in sd.groups)
        amounts = np.zeros((len(sd.groups), width), dtype=np.int64)
        sessions = np.zeros((len(sd.groups), width), dtype=np.bool_)
        for gi, g in enumerate(sd.groups):
            for si, st in enumerate(g.standards):
                amounts[gi, si] = st.amount_fen
                sessions[gi, si] = st.per == "session"
        amount[rows] = amounts[group[rows], standard[rows]]
        per_session[rows] = sessions[group[rows], standard[rows]]
    standard_amount = np.where(per_session, amount * batch.sessions, amount)
    base = np.where(fixed, np.minimum(total, standard_amount), 0)
    slot = np.where(group >= 0, group, tables.sd_share_basic.shape[1] - 1)
    share_b = tables.sd_share_basic[batch.version, slot]
    share_c = tables.sd_share_crit[batch.version, slot]
    share_a = tables.sd_share_assist[batch.version, slot]
    basic = np.minimum(base, mul_rate(base, share_b))
    crit = np.minimum(base - basic, mul_rate(base, share_c))
    assist = np.minimum(base - basic - crit, mul_rate(base, share_a))
    return base, basic, crit, assist


def settle(
    batch: ClaimBatch,
    tables: Tables,
    accumulators: Accumulators | None = None,
    *,
    trace: bool = False,
) -> BatchResult:
    """Settles a batch in order; returns results and the accumulators after.

    `accumulators` (not modified) holds the state before the batch, addressed
    by batch.person_year and batch.year_index; None starts from zero.
    """
    n = len(batch)
    n_funds = max(tables.n_funds, 1)
    if accumulators is None:
        py_rows = int(batch.person_year.max()) + 1 if n else 0
        year_rows = int(batch.year_index.max()) + 1 if n else 0
        acc = Accumulators.zeros(py_rows, year_rows, n_funds)
    else:
        acc = accumulators.copy()

    total, fully, over_limit, pre_self, in_scope = line_parts(batch, tables)
    group, fixed, standard, error = classify(batch, tables)
    fixed_base, fixed_basic, fixed_crit, fixed_assist = _fixed_shares(
        batch, tables, total, group, fixed, standard
    )
    ok = error == OK
    group_slot = np.where(group >= 0, group, tables.fund_group.shape[2] - 1)

    def out() -> I64:
        return np.zeros(n, dtype=np.int64)

    base, deductible, basic, crit, assist = out(), out(), out(), out(), out()
    backstop, patient, hospital = out(), out(), out()
    by_fund = np.zeros((n, n_funds), dtype=np.int64)
    eligible = np.zeros((n, n_funds), dtype=np.bool_)
    width = kernel.T_FUNDS + kernel.T_PER_FUND * tables.fund_col.shape[1]
    trace_rows = np.zeros((n if trace else 0, width), dtype=np.int64)
    t = tables
    kernel.settle_kernel(
        ok, batch.version, batch.person_year, batch.year_index, batch.scheme, batch.category,
        batch.visit_type, batch.level, fixed, group_slot, total, in_scope,
        fixed_base, fixed_basic, fixed_crit, fixed_assist,
        t.basic_present, t.basic_ded, t.basic_rate, t.basic_cap, t.basic_red, t.basic_bonus,
        t.crit_present, t.crit_vt, t.crit_ded, t.crit_cap, t.crit_nbands,
        t.crit_band_to, t.crit_band_rate, t.crit_red, t.crit_bonus, t.crit_uncapped,
        t.assist_vt, t.assist_cat, t.assist_ded, t.assist_rate, t.assist_cap,
        t.fund_count, t.fund_col, t.fund_cat, t.fund_vt, t.fund_group,
        t.fund_rate, t.fund_cap, t.fund_pool,
        t.back_present, t.back_cat, t.back_vt, t.back_level, t.back_share,
        acc.basic_paid, acc.critical_base, acc.critical_paid, acc.assistance_base,
        acc.assistance_paid, acc.charity_paid, acc.pool_used,
        base, deductible, basic, crit, assist, by_fund, eligible, backstop, patient, hospital,
        trace, trace_rows,
    )
    zero_failed = ~ok
    for column in (total, fully, over_limit, pre_self, in_scope):
        column[zero_failed] = 0
    return BatchResult(
        error=error,
        error_standard_group=np.where(zero_failed, group, -1),
        pathway_fixed=fixed,
        group=group,
        standard=standard,
        total=total,
        fully_self_paid=fully,
        over_limit=over_limit,
        pre_self_paid=pre_self,
        in_scope=in_scope,
        deductible=deductible,
        base=base,
        basic=basic,
        critical_illness=crit,
        medical_assistance=assist,
        charity=by_fund.sum(axis=1),
        charity_by_fund=by_fund,
        charity_eligible=eligible,
        backstop=backstop,
        patient_pays=patient,
        hospital_bears=hospital,
        accumulators=acc,
        trace=trace_rows if trace else None,
    )


__all__ = ["settle", "line_parts", "classify", "RATE_SCALE", "CLASS_A", "CLASS_B", "CLASS_C"]
