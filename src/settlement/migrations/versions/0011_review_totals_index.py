"""The review queue's covering index: the count and totals of a filter read index-only.

The queue shows, with every page, the count and the per-layer totals of the whole filter
(issue 12). Read from the table, that is one visit to a ~1 kB heap row (claim, result and
trace JSON) per matching settlement: a month of 80,000 settlements took ~1 s on the shared
host (docs/PERFORMANCE.md §9). ``ix_settlements_queue`` keys on ``seq`` (the settled-date
range becomes a seq range, settlements.query.seq_bounds; keyset order) and carries every
column the queue filters, sorts or sums: ~230 bytes a row, and no heap visit on pages the
visibility map marks all-visible. An index, not a second table: exact in the settle's own
transaction, nothing for the counter's code to fill, one btree insert at its right edge.

Partial on ``status IS NOT NULL`` (true of every row) like the listing's index (0003): only
the queue states it, so no other query of the counter can pick this wider index by accident.
Inserted rows reach the visibility map only when vacuumed: autovacuum is asked to vacuum
the table after 1 % new rows (PostgreSQL's default 20 %), so a recent month reads index-only.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 23:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LISTED = sa.text("status IS NOT NULL")
AMOUNTS = (
    "total", "fully_self_paid", "over_limit", "pre_self_paid", "in_scope", "deductible", "basic",
    "critical_illness", "medical_assistance", "charity", "backstop", "patient_pays", "hospital_bears",
    "emergency_relief",
)
CARRIED = (
    "settled_at", "hospital_id", "person_id", "status", "scheme", "category", "visit_type", "pathway",
    "admitted", "discharged", *(f"{name}_fen" for name in AMOUNTS),
)


def upgrade() -> None:
    op.create_index(
        "ix_settlements_queue",
        "settlements",
        ["seq"],
        unique=False,
        postgresql_include=list(CARRIED),
        postgresql_where=LISTED,
        sqlite_where=LISTED,
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE settlements SET (autovacuum_vacuum_insert_scale_factor = 0.01)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE settlements RESET (autovacuum_vacuum_insert_scale_factor)")
    op.drop_index("ix_settlements_queue", table_name="settlements")
