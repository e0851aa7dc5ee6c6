"""The sequential part of the rules: one pass over claims in order.

Everything that depends on earlier claims — the person-year accumulators
(basic_paid per visit type, critical and assistance bases and payments,
charity per fund) and the fund-year pools — is carried here, claim by claim,
in claim order. Caps can change between claims of one person-year (a new
category period, a mid-year schedule version), so an exact scan beats any
closed form. Each loop is plain Python source that `settlement.jit` runs as
it is for a few claims and compiled by numba for many.

The loop reads only pre-gathered int64/bool arrays and writes results in
place. Nothing here allocates per claim.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from settlement.jit import helper, kernel
from settlement.money import RATE_SCALE
from settlement.money import mul_rate as _mul_rate
from settlement.money import mul_rate_exact as _mul_rate_exact
from settlement.money import round_half_up_div as _round

# ClaimBatch.flags bits (engine.batch), repeated here as plain ints the compiled code folds in
_EMERGENCY = 1
_UNABLE_TO_PAY = 2
_UNIDENTIFIED = 4

# Column layout of the per-claim trace matrix (filled only when asked for).
T_BASIC_D = 0
T_BASIC_RATE = 1
T_BASIC_WANT = 2
T_BASIC_REM = 3
T_CRIT_B = 4
T_CRIT_D = 5
T_CRIT_BEFORE = 6
T_CRIT_AFTER = 7
T_CRIT_PAY = 8
T_CRIT_REM = 9
T_ASSIST_B = 10
T_ASSIST_BEFORE = 11
T_ASSIST_AFTER = 12
T_ASSIST_PAY = 13
T_ASSIST_REM = 14
T_BACK_R = 15
T_BACK_L = 16
T_ER_R = 17
T_ER_E = 18
T_ER_PAY = 19
T_ER_POOL_REM = 20
T_FUNDS = 21  # then per fund slot: R, pay, person remaining, pool remaining
T_PER_FUND = 4


class ClaimColumns(NamedTuple):
    """Per claim, what the accumulator kernel reads: the batch's columns and the per-claim steps' results."""

    ok: Any
    version: Any
    person_year: Any
    year_index: Any
    scheme: Any
    category: Any
    visit: Any
    level: Any
    flags: Any
    fixed: Any
    sd_slot: Any
    group_slot: Any
    total: Any
    in_scope: Any
    pre_self: Any
    fixed_amount: Any


class LayerRules(NamedTuple):
    """The schedule tables of §5.3-§5.5 per version (engine.tables.Tables' arrays of the same names)."""

    sd_share_basic: Any
    sd_share_crit: Any
    sd_share_assist: Any
    basic_present: Any
    basic_ded: Any
    basic_rate: Any
    basic_cap: Any
    basic_red: Any
    basic_bonus: Any
    crit_present: Any
    crit_vt: Any
    crit_ded: Any
    crit_cap: Any
    crit_nbands: Any
    crit_band_to: Any
    crit_band_rate: Any
    crit_red: Any
    crit_bonus: Any
    crit_uncapped: Any
    assist_vt: Any
    assist_cat: Any
    assist_ded: Any
    assist_rate: Any
    assist_cap: Any
    fund_count: Any
    fund_col: Any
    fund_cat: Any
    fund_vt: Any
    fund_group: Any
    fund_rate: Any
    fund_cap: Any
    fund_pool: Any
    back_present: Any
    back_cat: Any
    back_vt: Any
    back_level: Any
    back_share: Any
    er_present: Any
    er_level: Any
    er_rate: Any
    er_cap: Any
    er_pool: Any


class Totals(NamedTuple):
    """The running totals, updated in place: engine.batch.Accumulators' arrays, in its order."""

    basic_paid: Any
    critical_base: Any
    critical_paid: Any
    assistance_base: Any
    assistance_paid: Any
    charity_paid: Any
    pool_used: Any


class Payments(NamedTuple):
    """Per claim, what the accumulator kernel writes (engine.batch.BatchResult's columns)."""

    base: Any
    deductible: Any
    basic: Any
    critical_illness: Any
    medical_assistance: Any
    charity_by_fund: Any
    charity_eligible: Any
    emergency_relief: Any
    backstop: Any
    patient_pays: Any
    hospital_bears: Any
    pool_bound: Any
    """[claim, pool column] (the layout of Totals.pool_used), written with the trace only: True where
    the pool's remaining room decided the amount drawn (amount = room; a tie with the rate or the
    person's cap included)."""


class ClassifyClaims(NamedTuple):
    """Per claim, what §5.2 reads."""

    version: Any
    diagnosis: Any
    treatment: Any
    age: Any
    scheme: Any
    category: Any
    level: Any
    visit: Any
    flags: Any


class GroupRules(NamedTuple):
    """The diagnosis groups of §5.2 per version; g_match[v, d, g] is computed per batch (distinct diagnoses)."""

    n_groups: Any
    g_match: Any
    g_min: Any
    g_max: Any
    g_aged: Any
    g_vt: Any
    sd_scheme: Any
    sd_cat: Any
    sd_level: Any


class StandardRules(NamedTuple):
    """The fixed standards of §5.2 per version; s_treat and s_match are computed per batch."""

    n_std: Any
    s_group: Any
    s_index: Any
    s_treat: Any
    s_match: Any
    s_min: Any
    s_max: Any


class Pathways(NamedTuple):
    """Per claim, what §5.2 writes."""

    group: Any
    fixed: Any
    standard: Any
    no_standard: Any


def _line_kernel(
    line_start: Any, item: Any, qty: Any, price: Any,
    item_class: Any, item_ratio: Any, item_cap: Any,
    out_fully: Any, out_over: Any, out_pre: Any, out_in_scope: Any,
) -> None:
    """§5.1 per claim: the four parts of the bill from its lines, fused in one pass.

    qty and price are scaled by 10^4 (yuan); qty × price is in 10^-6 fen,
    qty × cap (fen) in 10^-4 fen. Class 0 = A, 1 = B, 2 = C.
    """
    n = line_start.shape[0] - 1
    for i in range(n):
        fully = 0
        over = 0
        pre_sum = 0
        in_scope = 0
        for j in range(line_start[i], line_start[i + 1]):
            row = item[j]
            q = qty[j]
            p = price[j]
            amount = _round(q * p, 1_000_000)
            # "unit_price > cap → round(quantity × cap)" equals min(amount, round(quantity × cap)):
            # rounding is monotone, so the cap binds exactly when the price exceeds it. An item
            # without a cap carries one above the highest allowed price. Branch-free on purpose.
            capped = min(amount, _round(q * item_cap[row], RATE_SCALE))
            over += amount - capped
            # branch-free by class: the ratio is 0 for A and C, C goes wholly to fully
            is_c = item_class[row] == 2
            pre = _mul_rate(capped, item_ratio[row])  # ratio 0 for A and C
            pre_sum += pre
            fully += capped * is_c
            in_scope += (capped - pre) * (1 - is_c)
        out_fully[i] = fully
        out_over[i] = over
        out_pre[i] = pre_sum
        out_in_scope[i] = in_scope


line_kernel = kernel(_line_kernel)


def _classify_kernel(claims: ClassifyClaims, groups: GroupRules, standards: StandardRules, out: Pathways) -> None:
    """§5.2 per claim: first matching group, then the first fitting standard.

    g_match[v, d, g] / s_match[v, d, s] say whether diagnosis value d matches
    group g's / standard s's ICD-10 patterns (computed once per distinct value).
    An unidentified patient has no age: a group with an age bound never matches,
    and the claim always takes the standard pathway.
    """
    version, diagnosis, treatment, age, scheme, category, level, visit, flags = claims
    n_groups, g_match, g_min, g_max, g_aged, g_vt, sd_scheme, sd_cat, sd_level = groups
    n_std, s_group, s_index, s_treat, s_match, s_min, s_max = standards
    out_group, out_fixed, out_standard, out_no_standard = out
    for i in range(version.shape[0]):
        v = version[i]
        d = diagnosis[i]
        a = age[i]
        unidentified = (flags[i] & _UNIDENTIFIED) != 0
        group = -1
        for g in range(n_groups[v]):
            if g_match[v, d, g] and (not g_aged[v, g] if unidentified else g_min[v, g] <= a <= g_max[v, g]):
                group = g
                break
        out_group[i] = group
        out_fixed[i] = False
        out_standard[i] = -1
        out_no_standard[i] = False
        if group < 0 or treatment[i] < 0 or unidentified:
            continue
        if not (sd_scheme[v, scheme[i]] and sd_cat[v, category[i]] and sd_level[v, level[i]]
                and g_vt[v, group, visit[i]]):
            continue
        for k in range(n_std[v]):
            if (s_group[v, k] == group and s_treat[v, k] == treatment[i] and s_match[v, d, k]
                    and s_min[v, k] <= a <= s_max[v, k]):
                out_fixed[i] = True
                out_standard[i] = s_index[v, k]
                break
        if not out_fixed[i]:
            out_no_standard[i] = True


classify_kernel = kernel(_classify_kernel)


def _band_total(e: int, nbands: int, band_to: Any, band_rate: Any, bonus: int) -> int:
    """round(G(E)): Σ (part of [0, E] in each band) × min(1, band rate + bonus), rounded once."""
    whole = 0
    frac = 0
    lower = 0
    for b in range(nbands):
        upper = band_to[b]
        if e <= lower:
            break
        part = min(e, upper) - lower
        rate = min(RATE_SCALE, band_rate[b] + bonus)
        hi, lo = _mul_rate_exact(part, rate)
        whole += hi
        frac += lo
        lower = upper
    return whole + _round(frac, RATE_SCALE)


helper(_band_total)


def _settle_kernel(
    claims: ClaimColumns, rules: LayerRules, totals: Totals, out: Payments, want_trace: bool, trace: Any
) -> None:
    """§5.3-§5.5 claim by claim, in order: the totals are updated in place, the payments written."""
    (ok, version, person_year, year_index, scheme, category, visit, level, flags, fixed, sd_slot, group_slot,
     total, in_scope, pre_self, fixed_amount) = claims
    (sd_share_basic, sd_share_crit, sd_share_assist,
     basic_present, basic_ded, basic_rate, basic_cap, basic_red, basic_bonus,
     crit_present, crit_vt, crit_ded, crit_cap, crit_nbands, crit_band_to, crit_band_rate, crit_red, crit_bonus,
     crit_uncapped, assist_vt, assist_cat, assist_ded, assist_rate, assist_cap,
     fund_count, fund_col, fund_cat, fund_vt, fund_group, fund_rate, fund_cap, fund_pool,
     back_present, back_cat, back_vt, back_level, back_share,
     er_present, er_level, er_rate, er_cap, er_pool) = rules
    (acc_basic_paid, acc_crit_base, acc_crit_paid, acc_assist_base, acc_assist_paid, acc_charity_paid,
     acc_pool_used) = totals
    (out_base, out_deductible, out_basic, out_crit, out_assist, out_fund, out_eligible, out_er, out_backstop,
     out_patient, out_hospital, out_pool_bound) = out
    n = ok.shape[0]
    er_col = acc_pool_used.shape[1] - 1  # the emergency relief pool: the column after the charity funds'
    for i in range(n):
        if not ok[i]:
            continue
        v = version[i]
        py = person_year[i]
        yi = year_index[i]
        s = scheme[i]
        c = category[i]
        k = visit[i]
        lv = level[i]
        big_i = in_scope[i]
        fl = flags[i]
        unidentified = (fl & _UNIDENTIFIED) != 0
        basic = 0
        crit = 0
        assist = 0
        deductible = 0
        if fixed[i]:
            # §5.4: outside the annual caps and bases; the cut-backs only bite on tiny bases
            base = min(total[i], fixed_amount[i])
            g = sd_slot[i]
            basic = min(base, _mul_rate(base, sd_share_basic[v, g]))
            crit = min(base - basic, _mul_rate(base, sd_share_crit[v, g]))
            assist = min(base - basic - crit, _mul_rate(base, sd_share_assist[v, g]))
            out_hospital[i] = total[i] - base
        elif unidentified:
            # §5.5: no person, so no basic, critical, assistance, charity or backstop; no person-year row
            base = total[i]
        else:
            base = total[i]
            out_hospital[i] = 0
            # §5.3 basic
            if basic_present[v, s, k]:
                d_full = _mul_rate(basic_ded[v, s, k, lv], RATE_SCALE - basic_red[v, c])
                r = min(RATE_SCALE, basic_rate[v, s, k, lv] + basic_bonus[v, c])
                deductible = min(big_i, d_full)
                want = _mul_rate(big_i - deductible, r)
                rem = max(0, basic_cap[v, s, k] - acc_basic_paid[py, k])
                basic = min(want, rem)
                acc_basic_paid[py, k] += basic
                if want_trace:
                    trace[i, T_BASIC_D] = d_full
                    trace[i, T_BASIC_RATE] = r
                    trace[i, T_BASIC_WANT] = want
                    trace[i, T_BASIC_REM] = rem
            # §5.3 critical illness
            if crit_present[v, s] and crit_vt[v, s, k]:
                b = big_i - basic
                d = _mul_rate(crit_ded[v, s], RATE_SCALE - crit_red[v, c])
                before = acc_crit_base[py]
                after = before + b
                bonus = crit_bonus[v, c]
                nb = crit_nbands[v, s]
                pay = _band_total(
                    max(0, after - d), nb, crit_band_to[v, s], crit_band_rate[v, s], bonus
                ) - _band_total(max(0, before - d), nb, crit_band_to[v, s], crit_band_rate[v, s], bonus)
                # an uncapped category still grows critical_paid, but nothing limits it
                rem = pay if crit_uncapped[v, c] else max(0, crit_cap[v, s] - acc_crit_paid[py])
                crit = min(pay, rem)
                acc_crit_paid[py] += crit
                acc_crit_base[py] = after
                if want_trace:
                    trace[i, T_CRIT_B] = b
                    trace[i, T_CRIT_D] = d
                    trace[i, T_CRIT_BEFORE] = before
                    trace[i, T_CRIT_AFTER] = after
                    trace[i, T_CRIT_PAY] = pay
                    trace[i, T_CRIT_REM] = -1 if crit_uncapped[v, c] else rem
            # §5.3 medical assistance
            if assist_cat[v, c] and assist_vt[v, k]:
                b = big_i - basic - crit
                d = assist_ded[v, c]
                rate = assist_rate[v, c]
                before = acc_assist_base[py]
                after = before + b
                pay = _mul_rate(max(0, after - d), rate) - _mul_rate(max(0, before - d), rate)
                rem = max(0, assist_cap[v, c] - acc_assist_paid[py])
                assist = min(pay, rem)
                acc_assist_paid[py] += assist
                acc_assist_base[py] = after
                if want_trace:
                    trace[i, T_ASSIST_B] = b
                    trace[i, T_ASSIST_BEFORE] = before
                    trace[i, T_ASSIST_AFTER] = after
                    trace[i, T_ASSIST_PAY] = pay
                    trace[i, T_ASSIST_REM] = rem
        paid = basic + crit + assist
        # §5.5 charity, funds in schedule order
        g = group_slot[i]
        for f in range(0 if unidentified else fund_count[v]):
            if not (fund_cat[v, f, c] and fund_vt[v, f, k] and fund_group[v, f, g]):
                continue
            col = fund_col[v, f]
            out_eligible[i, col] = True
            r_left = base - paid
            pay = _mul_rate(max(0, r_left), fund_rate[v, f])
            person_rem = max(0, fund_cap[v, f] - acc_charity_paid[py, col])
            pool_rem = max(0, fund_pool[v, f] - acc_pool_used[yi, col])
            amount = min(pay, person_rem, pool_rem)
            acc_charity_paid[py, col] += amount
            acc_pool_used[yi, col] += amount
            out_fund[i, col] = amount
            paid += amount
            if want_trace:
                t0 = T_FUNDS + f * T_PER_FUND
                trace[i, t0] = r_left
                trace[i, t0 + 1] = pay
                trace[i, t0 + 2] = person_rem
                trace[i, t0 + 3] = pool_rem
                out_pool_bound[i, col] = amount >= pool_rem  # the room decided it (never an unlimited pool's)
        # §5.5 emergency relief: emergency care of a patient unidentified or unable to pay; one pool a year
        er = 0
        declared = (fl & _EMERGENCY) != 0 and (fl & (_UNABLE_TO_PAY | _UNIDENTIFIED)) != 0
        if declared and er_present[v] and er_level[v, lv]:
            r_left = base - paid
            # standard pathway: no more than the catalogue part of the bill
            e = r_left if fixed[i] else min(r_left, big_i + pre_self[i])
            pay = _mul_rate(max(0, e), er_rate[v])
            pool_rem = max(0, er_pool[v] - acc_pool_used[yi, er_col])
            er = min(pay, er_cap[v], pool_rem)
            acc_pool_used[yi, er_col] += er
            paid += er
            if want_trace:
                trace[i, T_ER_R] = r_left
                trace[i, T_ER_E] = e
                trace[i, T_ER_PAY] = pay
                trace[i, T_ER_POOL_REM] = pool_rem
                out_pool_bound[i, er_col] = er >= pool_rem
        # §5.5 backstop
        backstop = 0
        if not unidentified and back_present[v] and back_cat[v, c] and back_vt[v, k] and back_level[v, lv]:
            r_left = base - paid
            limit = _mul_rate(base, back_share[v])
            backstop = max(0, r_left - limit)
            if want_trace:
                trace[i, T_BACK_R] = r_left
                trace[i, T_BACK_L] = limit
        paid += backstop
        out_base[i] = base
        out_deductible[i] = deductible
        out_basic[i] = basic
        out_crit[i] = crit
        out_assist[i] = assist
        out_er[i] = er
        out_backstop[i] = backstop
        if unidentified:  # nobody to ask: the hospital bears what the fund leaves
            out_patient[i] = 0
            out_hospital[i] = total[i] - er
        else:
            out_patient[i] = base - paid


settle_kernel = kernel(_settle_kernel)
"""`settle_kernel.py_func` is `_settle_kernel`, the source the tests hold its compiled form to."""
