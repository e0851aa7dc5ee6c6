"""API keys and roles: hospital (its own claims), reviewer (civil affairs), insurer, admin."""

from .keys import Role

__all__ = ["Role"]
