"""Load test harness of the settlement service (see docs/PERFORMANCE.md)."""
