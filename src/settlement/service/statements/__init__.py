"""Daily statements per hospital and fund, from the ledger."""
