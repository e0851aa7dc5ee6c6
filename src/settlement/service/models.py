"""Every table of the service, imported so that ``Base.metadata`` is complete (Alembic, tests)."""

from .accounts.models import LoginAttempt, StaffUser, WebSession
from .accumulators.models import PersonCharity, PersonYear
from .auth.models import ApiKey
from .db import Base
from .funds.models import FundPool
from .persons.models import Person, PersonCategory
from .settlements.models import LedgerEntry, Settlement, SettlementEvent

metadata = Base.metadata

__all__ = [
    "ApiKey",
    "Base",
    "FundPool",
    "LedgerEntry",
    "LoginAttempt",
    "Person",
    "PersonCategory",
    "PersonCharity",
    "PersonYear",
    "Settlement",
    "SettlementEvent",
    "StaffUser",
    "WebSession",
    "metadata",
]
