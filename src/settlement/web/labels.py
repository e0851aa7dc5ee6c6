"""The words of the pages for the project's codes (English msgids; Chinese in the catalog, per GLOSSARY.md)."""

from __future__ import annotations

from .i18n import N_

ROLE_LABELS = {
    "reviewer": N_("Reviewer"),
    "admin": N_("Administrator"),
    "insurer": N_("Insurer"),
    "hospital": N_("Hospital"),
}

AMOUNT_LABELS = {
    "total": N_("Total medical cost"),
    "fully_self_paid": N_("Fully self-paid"),
    "over_limit": N_("Over price limit"),
    "pre_self_paid": N_("Pre-self-paid"),
    "in_scope": N_("In policy scope"),
    "deductible": N_("Deductible (this claim)"),
}

LAYER_LABELS = {
    "basic": N_("Basic insurance"),
    "critical_illness": N_("Critical illness insurance"),
    "medical_assistance": N_("Medical assistance"),
    "charity": N_("Charity"),
    "emergency_relief": N_("Emergency relief"),
    "backstop": N_("Government backstop"),
    "patient_pays": N_("Patient pays"),
    "hospital_bears": N_("Hospital bears"),
    "patient": N_("Patient pays"),
    "hospital": N_("Hospital bears"),
    "bill": N_("Bill"),
    "pathway": N_("Pathway"),
}

PAYERS = ("basic", "critical_illness", "medical_assistance", "charity", "backstop", "patient_pays", "hospital_bears")
"""Who pays a bill, in the order the layers pay (the settlement's money columns)."""

SCHEME_LABELS = {"resident": N_("Urban-rural residents"), "employee": N_("Urban employees")}

CATEGORY_LABELS = {
    "none": N_("Ordinary insured"),
    "extreme_poverty": N_("Extreme poverty (tekun)"),
    "subsistence_allowance": N_("Subsistence allowance (dibao)"),
    "registered_poor": N_("Registered poor"),
    "low_income": N_("Low-income family"),
    "illness_impoverished": N_("Impoverished by illness"),
}

VISIT_LABELS = {
    "inpatient": N_("Inpatient"),
    "outpatient": N_("Outpatient"),
    "chronic_outpatient": N_("Chronic outpatient"),
}

STATUS_LABELS = {"settled": N_("Settled"), "reversed": N_("Reversed"), "preview": N_("Preview")}

PATHWAY_LABELS = {"standard": N_("Fee for service"), "single_disease": N_("Single-disease fixed rate")}

CLASS_LABELS = {"A": N_("Class A"), "B": N_("Class B"), "C": N_("Class C")}

LEVEL_LABELS = {1: N_("Level 1 and below"), 2: N_("Level 2"), 3: N_("Level 3")}

REVIEW_LABELS = {
    "pending": N_("Pending"),
    "approved": N_("Approved"),
    "queried": N_("Queried (hospital to explain)"),
    "recovery": N_("Recovery"),
}

DECISION_LABELS = {
    "approve": N_("Approve"),
    "query": N_("Query"),
    "recover": N_("Recover"),
    "comment": N_("Comment"),
}


FLAG_LABELS = {
    "readmission": N_("Split admission"),
    "frequent_stays": N_("Frequent stays"),
    "bed_days_exceed_stay": N_("Bed days exceed the stay"),
    "duplicate_line": N_("Duplicate charge"),
    "over_price_cap": N_("Charged over the price cap"),
    "high_self_pay_share": N_("High self-pay share"),
    "high_total": N_("High total"),
    "fixed_standard_overrun": N_("Fixed standard overrun"),
    "backstop_paid": N_("Backstop paid"),
    "emergency_unidentified": N_("Emergency relief, unidentified patient"),
    "emergency_unable_to_pay": N_("Emergency relief, unable to pay"),
    "category_changed_after": N_("Category changed afterwards"),
    "resettled_after_reversal": N_("Settled again after a reversal"),
}
"""The review rules (reviews.rules.RULES) by name, for the flag filter and the flags shown."""

SORT_LABELS = {"settled_at": N_("Settled at"), "discharged": N_("Discharged"), "total": N_("Total medical cost")}


def globals_for_templates() -> dict[str, object]:
    return {
        "ROLE_LABELS": ROLE_LABELS,
        "AMOUNT_LABELS": AMOUNT_LABELS,
        "LAYER_LABELS": LAYER_LABELS,
        "PAYERS": PAYERS,
        "SCHEME_LABELS": SCHEME_LABELS,
        "CATEGORY_LABELS": CATEGORY_LABELS,
        "VISIT_LABELS": VISIT_LABELS,
        "STATUS_LABELS": STATUS_LABELS,
        "PATHWAY_LABELS": PATHWAY_LABELS,
        "CLASS_LABELS": CLASS_LABELS,
        "LEVEL_LABELS": LEVEL_LABELS,
        "REVIEW_LABELS": REVIEW_LABELS,
        "DECISION_LABELS": DECISION_LABELS,
        "FLAG_LABELS": FLAG_LABELS,
    }
