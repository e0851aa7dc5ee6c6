"""The engine's entry point: a columnar batch in, a columnar result out.

The steps follow SPEC §5 in order. Line items (§5.1), the pathway (§5.2) and
the fixed-standard shares (§5.4) depend on the claim alone and are computed
vectorised over the whole batch; everything that depends on earlier claims
(§5.3, §5.5) runs in the compiled kernel, in claim order. A counter settles a
batch of one through the very same function.
"""

from __future__ import annotations

import weakref

import numpy as np

from settlement import jit

from . import kernel
from .batch import (
    B8,
    EMERGENCY,
    I64,
    NO_STANDARD,
    OK,
    UNABLE_TO_PAY,
    UNIDENTIFIED,
    Accumulators,
    BatchResult,
    ClaimBatch,
)
from .tables import Tables, icd_rows


def line_parts(batch: ClaimBatch, tables: Tables) -> tuple[I64, I64, I64, I64, I64]:
    """§5.1: per claim total, fully_self_paid, over_limit, pre_self_paid, in_scope."""
    n = len(batch)
    jit.want(n)
    fully, over, pre, in_scope = (np.empty(n, dtype=np.int64) for _ in range(4))
    kernel.line_kernel(
        batch.line_start, batch.line_item, batch.line_qty, batch.line_price,
        tables.item_class, tables.item_ratio_bp, tables.item_cap_fen,
        fully, over, pre, in_scope,
    )
    total = fully + over + pre + in_scope
    return total, fully, over, pre, in_scope


def classify(batch: ClaimBatch, tables: Tables) -> tuple[I64, B8, I64, I64]:
    """§5.2: diagnosis group, fixed-standard pathway, standard index, engine error.

    The ICD-10 prefix tests run once per distinct diagnosis value (memoised on
    the tables); the per-claim first-match logic runs in the compiled kernel.
    """
    n = len(batch)
    jit.want(n)
    n_v = len(tables.schedules.versions)
    n_d = max(len(batch.diagnosis_values), 1)
    g_match = np.zeros((n_v, n_d, tables.sd_g_min.shape[1]), dtype=np.bool_)
    s_match = np.zeros((n_v, n_d, tables.sd_s_group.shape[1]), dtype=np.bool_)
    for d, code in enumerate(batch.diagnosis_values):
        g_match[:, d], s_match[:, d] = icd_rows(tables, code)
    treatment_ids = {value: i for i, value in enumerate(batch.treatment_values)}
    s_treat = np.full(tables.sd_s_group.shape, -2, dtype=np.int64)
    for v, names in enumerate(tables.sd_s_treatment):
        for k, name in enumerate(names):
            s_treat[v, k] = treatment_ids.get(name, -2)

    group = np.empty(n, dtype=np.int64)
    fixed = np.empty(n, dtype=np.bool_)
    standard = np.empty(n, dtype=np.int64)
    no_standard = np.empty(n, dtype=np.bool_)
    t = tables
    kernel.classify_kernel(
        kernel.ClassifyClaims(
            batch.version, batch.diagnosis, batch.treatment, batch.age, batch.scheme, batch.category,
            batch.level, batch.visit_type, batch.claim_flags(),
        ),
        kernel.GroupRules(
            t.sd_n_groups, g_match, t.sd_g_min, t.sd_g_max, t.sd_g_aged, t.sd_g_vt, t.sd_scheme, t.sd_cat, t.sd_level
        ),
        kernel.StandardRules(t.sd_n_std, t.sd_s_group, t.sd_s_index, s_treat, s_match, t.sd_s_min, t.sd_s_max),
        kernel.Pathways(group, fixed, standard, no_standard),
    )
    error = np.where(no_standard, NO_STANDARD, OK).astype(np.int64)
    return group, fixed, standard, error


def _standard_amounts(batch: ClaimBatch, tables: Tables, group: I64, fixed: B8, standard: I64) -> I64:
    """§5.4: S = the standard's amount, × sessions when it is paid per session."""
    amount = np.zeros(len(batch), dtype=np.int64)
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
        picked = amounts[group[rows], standard[rows]]
        amount[rows] = np.where(sessions[group[rows], standard[rows]], picked * batch.sessions[rows], picked)
    return amount


_rules: dict[int, tuple[weakref.ref[Tables], kernel.LayerRules]] = {}


def layer_rules(tables: Tables) -> kernel.LayerRules:
    """The accumulator kernel's tables of a schedule set, gathered once per Tables."""
    held = _rules.get(id(tables))
    if held is None or held[0]() is not tables:
        held = (weakref.ref(tables), kernel.LayerRules(*(getattr(tables, name) for name in kernel.LayerRules._fields)))
        _rules[id(tables)] = held
        weakref.finalize(tables, _rules.pop, id(tables), None)  # no Tables kept alive by the cache
    return held[1]


def emergency_eligible(batch: ClaimBatch, tables: Tables) -> B8:
    """§5.5: whether the emergency relief layer applies to each claim (its pool is read), paid or not."""
    flags = batch.claim_flags()
    declared = ((flags & EMERGENCY) != 0) & ((flags & (UNABLE_TO_PAY | UNIDENTIFIED)) != 0)
    eligible: B8 = declared & tables.er_present[batch.version] & tables.er_level[batch.version, batch.level]
    return eligible


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
    jit.want(n)  # a batch of jit.SMALL claims or more runs the compiled kernels
    n_funds = max(tables.n_funds, 1)
    if accumulators is None:
        py_rows = int(batch.person_year.max()) + 1 if n else 0
        year_rows = int(batch.year_index.max()) + 1 if n else 0
        acc = Accumulators.zeros(py_rows, year_rows, n_funds)
    else:
        acc = accumulators.copy()

    total, fully, over_limit, pre_self, in_scope = line_parts(batch, tables)
    group, fixed, standard, error = classify(batch, tables)
    fixed_amount = _standard_amounts(batch, tables, group, fixed, standard)
    ok = error == OK
    group_slot = np.where(group >= 0, group, tables.fund_group.shape[2] - 1)
    sd_slot = np.where(group >= 0, group, tables.sd_share_basic.shape[1] - 1)

    def out() -> I64:
        return np.zeros(n, dtype=np.int64)

    base, deductible, basic, crit, assist = out(), out(), out(), out(), out()
    emergency, backstop, patient, hospital = out(), out(), out(), out()
    by_fund = np.zeros((n, n_funds), dtype=np.int64)
    eligible = np.zeros((n, n_funds), dtype=np.bool_)
    pool_bound = np.zeros((n if trace else 0, n_funds + 1), dtype=np.bool_)  # acc.pool_used's columns
    width = kernel.T_FUNDS + kernel.T_PER_FUND * tables.fund_col.shape[1]
    trace_rows = np.zeros((n if trace else 0, width), dtype=np.int64)
    kernel.settle_kernel(
        kernel.ClaimColumns(
            ok, batch.version, batch.person_year, batch.year_index, batch.scheme, batch.category,
            batch.visit_type, batch.level, batch.claim_flags(), fixed, sd_slot, group_slot, total, in_scope,
            pre_self, fixed_amount,
        ),
        layer_rules(tables),
        kernel.Totals(
            acc.basic_paid, acc.critical_base, acc.critical_paid, acc.assistance_base,
            acc.assistance_paid, acc.charity_paid, acc.pool_used,
        ),
        kernel.Payments(
            base, deductible, basic, crit, assist, by_fund, eligible, emergency, backstop, patient, hospital,
            pool_bound,
        ),
        trace,
        trace_rows,
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
        charity_pool_bound=pool_bound[:, :-1] if trace else None,
        emergency_relief=emergency,
        emergency_relief_pool_bound=pool_bound[:, -1] if trace else None,
        backstop=backstop,
        patient_pays=patient,
        hospital_bears=hospital,
        accumulators=acc,
        trace=trace_rows if trace else None,
    )


__all__ = ["classify", "emergency_eligible", "line_parts", "settle"]
