"""Reconciliation runs (对账): an insurer's file matched against the ledger, stored with its items."""
