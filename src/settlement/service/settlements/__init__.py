"""Settle, preview, reverse and read settlements."""
