"""Charity fund pools per policy year (SPEC §5.5)."""
