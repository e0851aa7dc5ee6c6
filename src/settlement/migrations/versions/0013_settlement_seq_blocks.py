"""Block totals of the review queue: ``settlement_seq_blocks``, the count, first and last settled_at
and the sum of every amount per block of 1,024 settlement seqs, kept by the refresher
(settlements.rollup): the totals of all 1,000,000 settlements add ~980 rows instead of 1,000,000
(docs/PERFORMANCE.md §9.1c). Empty here; the service's refresher fills it from block 0.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 02:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)  # UTC
AMOUNTS = (
    "total", "fully_self_paid", "over_limit", "pre_self_paid", "in_scope", "deductible", "basic",
    "critical_illness", "medical_assistance", "charity", "backstop", "patient_pays", "hospital_bears",
    "emergency_relief",
)


def upgrade() -> None:
    op.create_table(
        "settlement_seq_blocks",
        sa.Column("block", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_at", TIMESTAMP, nullable=True),
        sa.Column("last_at", TIMESTAMP, nullable=True),
        *(sa.Column(f"{name}_fen", sa.BigInteger(), nullable=False) for name in AMOUNTS),
        sa.PrimaryKeyConstraint("block", name=op.f("pk_settlement_seq_blocks")),
    )


def downgrade() -> None:
    op.drop_table("settlement_seq_blocks")
