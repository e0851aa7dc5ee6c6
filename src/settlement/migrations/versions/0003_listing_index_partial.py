"""The hospital listing's index made partial, so the claim lookup can only use the unique index.

Every settle looks for an earlier settlement with ``hospital_id = $1 AND
claim_id = $2``. Two indexes led with ``hospital_id``: the unique
``(hospital_id, claim_id)`` and the listing's ``(hospital_id, seq)``. On a
table autovacuum had not analyzed yet their estimates tied, and PostgreSQL
took the listing's index and filtered every settlement of the hospital by
claim_id (docs/PERFORMANCE.md §3, session 3): a lookup whose cost depended on
statistics and grew with the hospital's settlements.

The listing's index now carries the predicate ``status IS NOT NULL``. The
column is NOT NULL, so the index still holds every row; but the planner uses a
partial index only for a query whose WHERE implies its predicate, and only the
listing (``settlements.repository.search``) states it. The claim lookups never
mention ``status``, so the unique index is the only index they can use,
whatever the statistics say.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 06:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LISTED = sa.text("status IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_settlements_hospital_id_seq", table_name="settlements")
    op.create_index(
        "ix_settlements_hospital_id_seq",
        "settlements",
        ["hospital_id", "seq"],
        unique=False,
        postgresql_where=LISTED,
        sqlite_where=LISTED,
    )


def downgrade() -> None:
    op.drop_index("ix_settlements_hospital_id_seq", table_name="settlements")
    op.create_index("ix_settlements_hospital_id_seq", "settlements", ["hospital_id", "seq"], unique=False)
