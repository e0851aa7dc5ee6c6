"""A schedule set compiled into dense numpy tables the kernel can index.

Every value the rules read is gathered here once per schedule set, so that a
batch needs no dict look-ups per claim: the kernel indexes
`table[version, scheme, visit_type, level]` and the like. Null caps become
:data:`UNLIMITED`, far above any reachable sum (int64 holds 9.2e18 fen).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from settlement.schedules.types import (
    CATEGORIES,
    NO_ADJUSTMENT,
    SCHEMES,
    VISIT_TYPES,
    ScheduleSet,
)

I64 = npt.NDArray[np.int64]
B8 = npt.NDArray[np.bool_]

MAX_CAP_FEN = 10**9
AGE_MAX = 10_000
"""An open upper age bound."""
UNLIMITED = 2**62
"""A null cap or pool: larger than any sum of payments the engine can produce."""

CLASS_A, CLASS_B, CLASS_C = 0, 1, 2
N_SCHEMES, N_CATS, N_VT, N_LEVELS = len(SCHEMES), len(CATEGORIES), len(VISIT_TYPES), 4


def _cap(value: int | None) -> int:
    return UNLIMITED if value is None else value


@dataclass(frozen=True)
class Tables:
    schedules: ScheduleSet
    n_funds: int
    # catalog, all versions concatenated; a line's item is a global row
    item_class: I64
    item_ratio_bp: I64
    item_cap_fen: I64  # MAX_CAP_FEN: no price cap
    catalog_rows: tuple[dict[str, int], ...]  # per version: code -> global row
    # basic [V, scheme, vt(, level)]
    basic_present: B8
    basic_ded: I64
    basic_rate: I64
    basic_cap: I64
    basic_red: I64  # [V, cat]
    basic_bonus: I64
    # critical illness [V, scheme]
    crit_present: B8
    crit_vt: B8  # [V, scheme, vt]
    crit_ded: I64
    crit_cap: I64
    crit_nbands: I64
    crit_band_to: I64  # [V, scheme, maxbands]
    crit_band_rate: I64
    crit_red: I64  # [V, cat]
    crit_bonus: I64
    crit_uncapped: B8
    # medical assistance
    assist_vt: B8  # [V, vt]
    assist_cat: B8  # [V, cat]
    assist_ded: I64
    assist_rate: I64
    assist_cap: I64
    # charity [V, slot] in the schedule's order; column = fund's index in fund_ids
    fund_count: I64  # [V]
    fund_col: I64  # [V, maxfunds]
    fund_cat: B8  # [V, maxfunds, cat]
    fund_vt: B8  # [V, maxfunds, vt]
    fund_group: B8  # [V, maxfunds, maxgroups + 1]; last column: no diagnosis group
    fund_rate: I64
    fund_cap: I64
    fund_pool: I64
    # backstop
    back_present: B8
    back_cat: B8
    back_vt: B8
    back_level: B8
    back_share: I64
    # emergency relief [V] (SPEC §5.5); its pool is the last column of Accumulators.pool_used
    er_present: B8
    er_level: B8  # [V, level]
    er_rate: I64
    er_cap: I64  # per claim; UNLIMITED for null
    er_pool: I64
    # single disease: shares per (V, group); row maxgroups holds the default
    sd_share_basic: I64
    sd_share_crit: I64
    sd_share_assist: I64
    # single disease: pathway conditions and standards flattened in schedule order
    sd_n_groups: I64  # [V]
    sd_g_min: I64  # [V, group]
    sd_g_max: I64
    sd_g_aged: B8  # [V, group]: has min_age or max_age (never matches an unidentified patient, §5.2)
    sd_g_vt: B8  # [V, group, vt]
    sd_scheme: B8  # [V, scheme]
    sd_cat: B8  # [V, cat]
    sd_level: B8  # [V, level]
    sd_n_std: I64  # [V]
    sd_s_group: I64  # [V, flat standard]
    sd_s_index: I64
    sd_s_min: I64
    sd_s_max: I64
    sd_s_treatment: tuple[tuple[str, ...], ...]  # [V][flat standard]
    icd_patterns: tuple[tuple[tuple[tuple[str, ...] | None, ...], tuple[tuple[str, ...] | None, ...]], ...]
    """Per version: (group patterns, standard patterns), trimmed and upper-cased once."""
    icd_cache: dict[str, tuple[B8, B8]]
    """Diagnosis value → ([V, group] and [V, standard] matches); filled as values are seen."""


def icd_rows(tables: Tables, code: str) -> tuple[B8, B8]:
    """Which groups and standards (per version) a diagnosis value matches; memoised.

    SPEC §3: the trimmed, upper-cased code starts with the upper-cased pattern;
    a standard without icd10 matches any code.
    """
    cached = tables.icd_cache.get(code)
    if cached is not None:
        return cached
    normalized = code.strip().upper()
    n_v = len(tables.schedules.versions)
    groups = np.zeros((n_v, tables.sd_g_min.shape[1]), dtype=np.bool_)
    standards = np.zeros((n_v, tables.sd_s_group.shape[1]), dtype=np.bool_)
    for v, (group_patterns, standard_patterns) in enumerate(tables.icd_patterns):
        for g, pats in enumerate(group_patterns):
            groups[v, g] = pats is None or normalized.startswith(pats)
        for k, pats in enumerate(standard_patterns):
            standards[v, k] = pats is None or normalized.startswith(pats)
    if len(tables.icd_cache) < 100_000:  # bounded: ICD-10 has about 70,000 codes
        tables.icd_cache[code] = (groups, standards)
    return groups, standards


def compile_tables(schedules: ScheduleSet) -> Tables:
    """Builds the dense tables; run once per schedule set and reuse for every batch."""
    versions = schedules.versions
    n_v = len(versions)
    fund_cols = {fund_id: i for i, fund_id in enumerate(schedules.fund_ids)}
    max_funds = max([len(v.charity_funds) for v in versions] + [1])
    max_groups = max([len(v.single_disease.groups) if v.single_disease else 0 for v in versions] + [1])
    max_bands = max(
        [len(s.bands) for v in versions if v.critical_illness for s in v.critical_illness.sections.values()]
        + [1]
    )

    classes: list[int] = []
    ratios: list[int] = []
    caps: list[int] = []
    catalog_rows: list[dict[str, int]] = []
    for version in versions:
        rows: dict[str, int] = {}
        for code, item in version.catalog.items():
            rows[code] = len(classes)
            classes.append("ABC".index(item.cls))
            ratios.append(item.self_pay_ratio_bp or 0)
            # no cap, or a cap above the highest allowed unit price (10^6 yuan), can never
            # bind; MAX_CAP_FEN stands for both and keeps quantity × cap inside int64
            caps.append(MAX_CAP_FEN if item.price_cap_fen is None else min(item.price_cap_fen, MAX_CAP_FEN))
        catalog_rows.append(rows)

    def zeros(*shape: int) -> I64:
        return np.zeros(shape, dtype=np.int64)

    def falses(*shape: int) -> B8:
        return np.zeros(shape, dtype=np.bool_)

    t = dict(
        basic_present=falses(n_v, N_SCHEMES, N_VT),
        basic_ded=zeros(n_v, N_SCHEMES, N_VT, N_LEVELS),
        basic_rate=zeros(n_v, N_SCHEMES, N_VT, N_LEVELS),
        basic_cap=zeros(n_v, N_SCHEMES, N_VT),
        basic_red=zeros(n_v, N_CATS),
        basic_bonus=zeros(n_v, N_CATS),
        crit_present=falses(n_v, N_SCHEMES),
        crit_vt=falses(n_v, N_SCHEMES, N_VT),
        crit_ded=zeros(n_v, N_SCHEMES),
        crit_cap=zeros(n_v, N_SCHEMES),
        crit_nbands=zeros(n_v, N_SCHEMES),
        crit_band_to=zeros(n_v, N_SCHEMES, max_bands),
        crit_band_rate=zeros(n_v, N_SCHEMES, max_bands),
        crit_red=zeros(n_v, N_CATS),
        crit_bonus=zeros(n_v, N_CATS),
        crit_uncapped=falses(n_v, N_CATS),
        assist_vt=falses(n_v, N_VT),
        assist_cat=falses(n_v, N_CATS),
        assist_ded=zeros(n_v, N_CATS),
        assist_rate=zeros(n_v, N_CATS),
        assist_cap=zeros(n_v, N_CATS),
        fund_count=zeros(n_v),
        fund_col=zeros(n_v, max_funds),
        fund_cat=falses(n_v, max_funds, N_CATS),
        fund_vt=falses(n_v, max_funds, N_VT),
        fund_group=falses(n_v, max_funds, max_groups + 1),
        fund_rate=zeros(n_v, max_funds),
        fund_cap=zeros(n_v, max_funds),
        fund_pool=zeros(n_v, max_funds),
        back_present=falses(n_v),
        back_cat=falses(n_v, N_CATS),
        back_vt=falses(n_v, N_VT),
        back_level=falses(n_v, N_LEVELS),
        back_share=zeros(n_v),
        er_present=falses(n_v),
        er_level=falses(n_v, N_LEVELS),
        er_rate=zeros(n_v),
        er_cap=zeros(n_v),
        er_pool=zeros(n_v),
        sd_share_basic=zeros(n_v, max_groups + 1),
        sd_share_crit=zeros(n_v, max_groups + 1),
        sd_share_assist=zeros(n_v, max_groups + 1),
    )
    for v, version in enumerate(versions):
        for (scheme, vt), section in version.basic.sections.items():
            s, k = SCHEMES.index(scheme), VISIT_TYPES.index(vt)
            t["basic_present"][v, s, k] = True
            for level in (1, 2, 3):
                t["basic_ded"][v, s, k, level] = section.deductible_fen[level]
                t["basic_rate"][v, s, k, level] = section.rate_bp[level]
            t["basic_cap"][v, s, k] = _cap(section.annual_cap_fen)
        for c, category in enumerate(CATEGORIES):
            adj = version.basic.category_adjustments.get(category, NO_ADJUSTMENT)
            t["basic_red"][v, c] = adj.deductible_reduction_bp
            t["basic_bonus"][v, c] = adj.rate_bonus_bp
        if version.critical_illness is not None:
            layer = version.critical_illness
            for scheme, sec in layer.sections.items():
                s = SCHEMES.index(scheme)
                t["crit_present"][v, s] = True
                for vt in sec.visit_types:
                    t["crit_vt"][v, s, VISIT_TYPES.index(vt)] = True
                t["crit_ded"][v, s] = sec.annual_deductible_fen
                t["crit_cap"][v, s] = _cap(sec.annual_cap_fen)
                t["crit_nbands"][v, s] = len(sec.bands)
                for b, band in enumerate(sec.bands):
                    t["crit_band_to"][v, s, b] = _cap(band.up_to_fen)
                    t["crit_band_rate"][v, s, b] = band.rate_bp
            for c, category in enumerate(CATEGORIES):
                adj = layer.category_adjustments.get(category, NO_ADJUSTMENT)
                t["crit_red"][v, c] = adj.deductible_reduction_bp
                t["crit_bonus"][v, c] = adj.rate_bonus_bp
                t["crit_uncapped"][v, c] = adj.uncapped
        if version.medical_assistance is not None:
            ma = version.medical_assistance
            for vt in ma.visit_types:
                t["assist_vt"][v, VISIT_TYPES.index(vt)] = True
            for category, entry in ma.categories.items():
                c = CATEGORIES.index(category)
                t["assist_cat"][v, c] = True
                t["assist_ded"][v, c] = entry.annual_deductible_fen
                t["assist_rate"][v, c] = entry.rate_bp
                t["assist_cap"][v, c] = _cap(entry.annual_cap_fen)
        groups = [g.id for g in version.single_disease.groups] if version.single_disease else []
        t["fund_count"][v] = len(version.charity_funds)
        for f, fund in enumerate(version.charity_funds):
            t["fund_col"][v, f] = fund_cols[fund.id]
            for category in fund.categories:
                t["fund_cat"][v, f, CATEGORIES.index(category)] = True
            for vt in fund.visit_types:
                t["fund_vt"][v, f, VISIT_TYPES.index(vt)] = True
            if fund.disease_groups is None:
                t["fund_group"][v, f, :] = True
            else:
                for group_id in fund.disease_groups:
                    t["fund_group"][v, f, groups.index(group_id)] = True
            t["fund_rate"][v, f] = fund.rate_bp
            t["fund_cap"][v, f] = _cap(fund.annual_cap_per_person_fen)
            t["fund_pool"][v, f] = _cap(fund.annual_pool_fen)
        if version.backstop is not None:
            bs = version.backstop
            t["back_present"][v] = True
            for category in bs.categories:
                t["back_cat"][v, CATEGORIES.index(category)] = True
            for vt in bs.visit_types:
                t["back_vt"][v, VISIT_TYPES.index(vt)] = True
            for level in bs.hospital_levels:
                t["back_level"][v, level] = True
            t["back_share"][v] = bs.max_personal_share_bp
        if version.emergency_relief is not None:
            er = version.emergency_relief
            t["er_present"][v] = True
            for level in er.hospital_levels:
                t["er_level"][v, level] = True
            t["er_rate"][v] = er.rate_bp
            t["er_cap"][v] = _cap(er.case_cap_fen)
            t["er_pool"][v] = _cap(er.annual_pool_fen)
        if version.single_disease is not None:
            sd = version.single_disease
            for g, group in enumerate([*sd.groups, None]):
                shares = sd.shares if group is None or group.shares is None else group.shares
                row = max_groups if group is None else g
                t["sd_share_basic"][v, row] = shares.basic_bp
                t["sd_share_crit"][v, row] = shares.critical_illness_bp
                t["sd_share_assist"][v, row] = shares.medical_assistance_bp
    max_std = max([sum(len(g.standards) for g in v.single_disease.groups) if v.single_disease else 0
                   for v in versions] + [1])
    sdt = dict(
        sd_n_groups=zeros(n_v),
        sd_g_min=zeros(n_v, max_groups),
        sd_g_max=zeros(n_v, max_groups),
        sd_g_aged=falses(n_v, max_groups),
        sd_g_vt=falses(n_v, max_groups, N_VT),
        sd_scheme=falses(n_v, N_SCHEMES),
        sd_cat=falses(n_v, N_CATS),
        sd_level=falses(n_v, N_LEVELS),
        sd_n_std=zeros(n_v),
        sd_s_group=zeros(n_v, max_std),
        sd_s_index=zeros(n_v, max_std),
        sd_s_min=zeros(n_v, max_std),
        sd_s_max=zeros(n_v, max_std),
    )
    treatments: list[tuple[str, ...]] = []
    patterns: list[tuple[tuple[tuple[str, ...] | None, ...], tuple[tuple[str, ...] | None, ...]]] = []

    def norm(codes: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if codes is None else tuple(c.strip().upper() for c in codes)

    for v, version in enumerate(versions):
        single = version.single_disease
        if single is None:
            treatments.append(())
            patterns.append(((), ()))
            continue
        flat = [(gi, si, st) for gi, g in enumerate(single.groups) for si, st in enumerate(g.standards)]
        sdt["sd_n_groups"][v] = len(single.groups)
        sdt["sd_n_std"][v] = len(flat)
        for gi, grp in enumerate(single.groups):
            sdt["sd_g_min"][v, gi] = -1 if grp.min_age is None else grp.min_age
            sdt["sd_g_max"][v, gi] = AGE_MAX if grp.max_age is None else grp.max_age
            sdt["sd_g_aged"][v, gi] = grp.min_age is not None or grp.max_age is not None
            for k, vt in enumerate(VISIT_TYPES):
                sdt["sd_g_vt"][v, gi, k] = vt in grp.visit_types
        sdt["sd_scheme"][v] = [x in single.schemes for x in SCHEMES]
        sdt["sd_cat"][v] = [x in single.categories for x in CATEGORIES]
        sdt["sd_level"][v] = [x in single.hospital_levels for x in range(N_LEVELS)]
        for k, (gi, si, st) in enumerate(flat):
            sdt["sd_s_group"][v, k] = gi
            sdt["sd_s_index"][v, k] = si
            sdt["sd_s_min"][v, k] = -1 if st.min_age is None else st.min_age
            sdt["sd_s_max"][v, k] = AGE_MAX if st.max_age is None else st.max_age
        treatments.append(tuple(st.treatment for _, _, st in flat))
        patterns.append(
            (tuple(norm(grp.icd10) for grp in single.groups), tuple(norm(st.icd10) for _, _, st in flat))
        )
    return Tables(
        schedules=schedules,
        sd_s_treatment=tuple(treatments),
        icd_patterns=tuple(patterns),
        icd_cache={},
        **sdt,  # type: ignore[arg-type]
        n_funds=len(schedules.fund_ids),
        item_class=np.array(classes, dtype=np.int64),
        item_ratio_bp=np.array(ratios, dtype=np.int64),
        item_cap_fen=np.array(caps, dtype=np.int64),
        catalog_rows=tuple(catalog_rows),
        **t,  # type: ignore[arg-type]
    )
