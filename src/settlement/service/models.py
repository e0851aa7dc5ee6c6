"""Every table of the service, imported so that ``Base.metadata`` is complete (Alembic, tests)."""

from .accumulators.models import PersonCharity, PersonYear
from .auth.models import ApiKey
from .db import Base
from .funds.models import FundPool
from .hospitals.models import Hospital, HospitalChange
from .persons.models import Person, PersonCategory
from .previews.models import PreviewRecord
from .settlements.models import LedgerEntry, Settlement, SettlementEvent

metadata = Base.metadata

__all__ = [
    "ApiKey",
    "Base",
    "FundPool",
    "Hospital",
    "HospitalChange",
    "LedgerEntry",
    "Person",
    "PersonCategory",
    "PersonCharity",
    "PersonYear",
    "PreviewRecord",
    "Settlement",
    "SettlementEvent",
    "metadata",
]
