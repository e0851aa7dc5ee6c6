"""Every table of the service, imported so that ``Base.metadata`` is complete (Alembic, tests)."""

from .accounts.models import LoginAttempt, StaffUser, WebSession
from .accumulators.models import PersonCharity, PersonYear
from .auth.models import ApiKey
from .db import Base
from .funds.models import FundPool
from .hospitals.models import Hospital, HospitalChange
from .persons.models import Person, PersonCategory, PersonHistory
from .previews.models import PreviewRecord
from .reconciliations.models import ReconciliationItem, ReconciliationRun
from .reviews.models import FlagCheck, FlagRefreshState, Review, ReviewStatus, SeqMark, SettlementFlag
from .settlements.models import LedgerEntry, Settlement, SettlementEvent
from .settlements.rollup import seq_blocks
from .statements.models import PeriodClose

metadata = Base.metadata

__all__ = [
    "ApiKey",
    "Base",
    "FlagCheck",
    "FlagRefreshState",
    "FundPool",
    "Hospital",
    "HospitalChange",
    "LedgerEntry",
    "LoginAttempt",
    "PeriodClose",
    "Person",
    "PersonCategory",
    "PersonCharity",
    "PersonHistory",
    "PersonYear",
    "PreviewRecord",
    "ReconciliationItem",
    "ReconciliationRun",
    "Review",
    "ReviewStatus",
    "SeqMark",
    "Settlement",
    "SettlementEvent",
    "SettlementFlag",
    "StaffUser",
    "WebSession",
    "metadata",
    "seq_blocks",
]
