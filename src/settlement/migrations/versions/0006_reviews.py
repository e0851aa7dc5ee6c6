"""Settlement reviews and flags: review records, the review status projection, materialized flags,
the flags refresher's checks, state and seq marks, and a BRIN index on settlements.settled_at.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 20:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# column types of settlement.service.db, spelled out: this file must not change with the code
SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)  # UTC


def _seq_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["settlement_seq"], ["settlements.seq"], name=op.f(f"fk_{table}_settlement_seq_settlements")
    )


def upgrade() -> None:
    op.create_table(
        "settlement_reviews",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("settlement_seq", SERIAL, nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("batch_id", sa.String(length=36), nullable=True),
        sa.CheckConstraint(
            "decision IN ('approve', 'query', 'recover', 'comment')", name=op.f("ck_settlement_reviews_decision")
        ),
        sa.CheckConstraint(
            "decision NOT IN ('query', 'recover') OR (note IS NOT NULL AND note <> '')",
            name=op.f("ck_settlement_reviews_note_required"),
        ),
        _seq_fk("settlement_reviews"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_reviews")),
    )
    op.create_index(
        "ix_settlement_reviews_settlement_seq_id", "settlement_reviews", ["settlement_seq", "id"], unique=False
    )
    op.create_table(
        "settlement_review_status",
        sa.Column("settlement_seq", SERIAL, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("review_id", SERIAL, nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(
            "status IN ('approved', 'queried', 'recovery')", name=op.f("ck_settlement_review_status_status")
        ),
        _seq_fk("settlement_review_status"),
        sa.ForeignKeyConstraint(
            ["review_id"], ["settlement_reviews.id"],
            name=op.f("fk_settlement_review_status_review_id_settlement_reviews"),
        ),
        sa.PrimaryKeyConstraint("settlement_seq", name=op.f("pk_settlement_review_status")),
    )
    op.create_index(
        "ix_settlement_review_status_status_settlement_seq",
        "settlement_review_status",
        ["status", "settlement_seq"],
        unique=False,
    )
    op.create_table(
        "settlement_flags",
        sa.Column("settlement_seq", SERIAL, nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.Column("threshold", sa.JSON(), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        _seq_fk("settlement_flags"),
        sa.PrimaryKeyConstraint("settlement_seq", "rule", name=op.f("pk_settlement_flags")),
    )
    op.create_index(
        "ix_settlement_flags_rule_settlement_seq", "settlement_flags", ["rule", "settlement_seq"], unique=False
    )
    op.create_table(
        "settlement_flag_checks",
        sa.Column("settlement_seq", SERIAL, nullable=False),
        sa.Column("rules_digest", sa.String(length=16), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        _seq_fk("settlement_flag_checks"),
        sa.PrimaryKeyConstraint("settlement_seq", name=op.f("pk_settlement_flag_checks")),
    )
    op.create_table(
        "flag_refresh_state",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("rules_digest", sa.String(length=16), nullable=False),
        sa.Column("settlement_wm", sa.BigInteger(), nullable=False),
        sa.Column("settlement_mark", sa.BigInteger(), nullable=False),
        sa.Column("event_wm", sa.BigInteger(), nullable=False),
        sa.Column("event_mark", sa.BigInteger(), nullable=False),
        sa.Column("mark_at", TIMESTAMP, nullable=False),
        sa.Column("persons_since", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_flag_refresh_state")),
    )
    op.create_table(
        "settlement_seq_marks",
        sa.Column("at_hi", TIMESTAMP, nullable=False),
        sa.Column("at_lo", TIMESTAMP, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("at_hi", name=op.f("pk_settlement_seq_marks")),
    )
    op.create_index("ix_settlement_seq_marks_at_lo", "settlement_seq_marks", ["at_lo"], unique=False)
    op.create_index(
        "ix_settlements_settled_at_brin", "settlements", ["settled_at"], unique=False, postgresql_using="brin"
    )


def downgrade() -> None:
    op.drop_index("ix_settlements_settled_at_brin", table_name="settlements", postgresql_using="brin")
    op.drop_index("ix_settlement_seq_marks_at_lo", table_name="settlement_seq_marks")
    op.drop_table("settlement_seq_marks")
    op.drop_table("flag_refresh_state")
    op.drop_table("settlement_flag_checks")
    op.drop_index("ix_settlement_flags_rule_settlement_seq", table_name="settlement_flags")
    op.drop_table("settlement_flags")
    op.drop_index("ix_settlement_review_status_status_settlement_seq", table_name="settlement_review_status")
    op.drop_table("settlement_review_status")
    op.drop_index("ix_settlement_reviews_settlement_seq_id", table_name="settlement_reviews")
    op.drop_table("settlement_reviews")
