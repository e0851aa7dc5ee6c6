"""The review status rows carry their settlement's dates and amounts: a review-status filter reads one index.

The queue's "queried, largest first" (issue 12) joined 33,333 review status rows to their
settlements: one probe of ``ix_settlements_queue`` (253 MB for 1,000,000 settlements, more than
PostgreSQL's default shared_buffers) per match, for the count and totals and again for the page,
~130–190 ms each on the benchmark's machine (docs/PERFORMANCE.md §9.1e). Now each
``settlement_review_status`` row carries settled_at, admitted, discharged and the 14 amounts of its
settlement, copied when the row is first written (a settlement never changes them: a reversal
changes status and reversed_at only), and ``ix_settlement_review_status_status_settlement_seq``
INCLUDEs them: the count, totals and page of a filter of review status (and settled dates) read one
contiguous range of that index.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 05:20:00
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)  # UTC
AMOUNTS = (
    "total", "fully_self_paid", "over_limit", "pre_self_paid", "in_scope", "deductible", "basic",
    "critical_illness", "medical_assistance", "charity", "backstop", "patient_pays", "hospital_bears",
    "emergency_relief",
)
CARRIED = ("settled_at", "admitted", "discharged", *(f"{name}_fen" for name in AMOUNTS))
INDEX = "ix_settlement_review_status_status_settlement_seq"


def _columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("settled_at", TIMESTAMP, nullable=True),
        sa.Column("admitted", sa.Date(), nullable=True),
        sa.Column("discharged", sa.Date(), nullable=True),
        *(sa.Column(f"{name}_fen", sa.BigInteger(), nullable=True) for name in AMOUNTS),
    ]


def upgrade() -> None:
    with op.batch_alter_table("settlement_review_status") as batch:
        for column in _columns():
            batch.add_column(column)
    # the rows already there: their settlements' values (UPDATE … FROM: PostgreSQL, SQLite 3.33+)
    op.execute(
        "UPDATE settlement_review_status SET " + ", ".join(f"{c} = s.{c}" for c in CARRIED)
        + " FROM settlements s WHERE s.seq = settlement_review_status.settlement_seq"
    )
    op.drop_index(INDEX, table_name="settlement_review_status")
    with op.batch_alter_table("settlement_review_status") as batch:
        for column in _columns():
            batch.alter_column(column.name, existing_type=column.type, nullable=False)
    op.create_index(
        INDEX, "settlement_review_status", ["status", "settlement_seq"], unique=False,
        postgresql_include=list(CARRIED),
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name="settlement_review_status")
    with op.batch_alter_table("settlement_review_status") as batch:
        for name in CARRIED:
            batch.drop_column(name)
    op.create_index(INDEX, "settlement_review_status", ["status", "settlement_seq"], unique=False)
