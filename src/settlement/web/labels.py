"""The words of the pages for the project's codes (English msgids; Chinese in the catalog, per GLOSSARY.md)."""

from __future__ import annotations

from settlement.layers import SHARES

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

PAYERS = SHARES
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


FIGURE_LABELS = {
    "admitted": N_("Admitted"),
    "backstop": N_("Backstop"),
    "bed_days": N_("Bed days"),
    "category": N_("Category"),
    "code": N_("Item code"),
    "days_since_discharge": N_("Days since discharge"),
    "discharged": N_("Discharged"),
    "emergency_relief": N_("Emergency relief"),
    "from": N_("From"),
    "fully_self_paid": N_("Fully self-paid"),
    "hospital_bears": N_("Hospital bears"),
    "hospital_id": N_("Hospital"),
    "lines": N_("Lines"),
    "over_limit": N_("Over price limit"),
    "pathway": N_("Pathway"),
    "previous_discharged": N_("Previous discharge"),
    "previous_settlement_id": N_("Previous settlement"),
    "registry_category": N_("Category in the registry"),
    "repeated": N_("Repeated"),
    "reversed_at": N_("Reversed at"),
    "reversed_claim_id": N_("Reversed claim"),
    "reversed_settlement_id": N_("Reversed settlement"),
    "settled_category": N_("Category settled under"),
    "settlement_ids": N_("Settlements"),
    "share": N_("Share"),
    "stay_days": N_("Days of stay"),
    "stays": N_("Stays"),
    "temporary_id": N_("Temporary id"),
    "to": N_("To"),
    "total": N_("Total medical cost"),
    "unit_price": N_("Unit price"),
    "days": N_("Days"),
    "window_days": N_("Window (days)"),
    "bed_fee_codes": N_("Bed fee codes"),
    "amount": N_("Amount"),
}
"""The words of a flag's figures and thresholds (reviews.rules' keys), shown beside the flag."""


ERROR_LABELS = {
    "not_found": N_("Not found, or outside what your account may see."),
    "invalid_request": N_("Something in the request is not valid."),
    "unknown_parameter": N_("Something in the request is not valid."),
    "forbidden": N_("Your account may not do this."),
    "invalid_import": N_("The import has errors; nothing was imported."),
    "invalid_period": N_("A category period starts before the person's birth."),
    "note_required": N_("A query or a recovery needs a note saying why."),
    "claim_conflict": N_("Someone else changed this at the same time; reload the page and try again."),
    "database_unavailable": N_("The database is unavailable; try again later."),
    "busy": N_("The service is busy; try again later."),
}
ERROR_OTHER = N_("This could not be done.")
"""What an error page says for a service error's code (the English detail is shown under it, for the
administrator); any other code: ERROR_OTHER."""


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
        "FIGURE_LABELS": FIGURE_LABELS,
    }
