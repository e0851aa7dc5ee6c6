"""The person registry: scheme and category periods per person, kept by civil-affairs staff."""
