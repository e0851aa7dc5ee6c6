"""The payers of a claim, in settling order (SPEC §1, §6): the one list reports and reconciliations use.

``PAYMENTS`` are the keys of a result's ``payments``; ``SHARES`` adds what is
left for the patient and the hospital: together they add up to the total.
"""

from __future__ import annotations

PAYMENTS = ("basic", "critical_illness", "medical_assistance", "charity", "emergency_relief", "backstop")
SHARES = (*PAYMENTS, "patient_pays", "hospital_bears")

__all__ = ["PAYMENTS", "SHARES"]
