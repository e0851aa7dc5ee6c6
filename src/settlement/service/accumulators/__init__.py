"""Per person and policy year running totals (SPEC §5.3), kept as database rows."""
