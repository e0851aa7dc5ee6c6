"""Medical-assistance one-stop settlement engine (一站式结算)."""

__version__ = "0.1.0"
