"""Review of settled claims (事后审核): decisions, flags (预警) and the review queue's queries."""
