"""Period closes (月结) and reconciliation runs (对账) with their items.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 20:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# column types of settlement.service.db, spelled out: this file must not change with the code
SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
FEN = sa.BigInteger()
TIMESTAMP = sa.DateTime(timezone=True)
FIRST = sa.text("previous IS NULL")


def upgrade() -> None:
    op.create_table(
        "period_closes",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("fund", sa.String(length=64), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("previous", sa.String(length=7), nullable=True),
        sa.Column("through_entry", FEN, nullable=False),
        sa.Column("settlements", sa.Integer(), nullable=False),
        sa.Column("reversals", sa.Integer(), nullable=False),
        sa.Column("amount_fen", FEN, nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("lines_sha256", sa.String(length=64), nullable=False),
        sa.Column("rows", sa.JSON(), nullable=False),
        sa.Column("closed_at", TIMESTAMP, nullable=False),
        sa.Column("closed_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_period_closes")),
        sa.UniqueConstraint("fund", "period", name=op.f("uq_period_closes_fund_period")),
        sa.ForeignKeyConstraint(
            ["fund", "previous"],
            ["period_closes.fund", "period_closes.period"],
            name="fk_period_closes_previous",
        ),
    )
    op.create_index(
        "uq_period_closes_first",
        "period_closes",
        ["fund"],
        unique=True,
        postgresql_where=FIRST,
        sqlite_where=FIRST,
    )
    op.create_table(
        "reconciliation_runs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("fund", sa.String(length=64), nullable=False),
        sa.Column("period_from", sa.Date(), nullable=False),
        sa.Column("period_to", sa.Date(), nullable=False),
        sa.Column("input_name", sa.String(length=255), nullable=False),
        sa.Column("input_sha256", sa.String(length=64), nullable=False),
        sa.Column("ran_by", sa.String(length=128), nullable=False),
        sa.Column("ran_at", TIMESTAMP, nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_runs")),
    )
    op.create_table(
        "reconciliation_items",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("hospital_id", sa.String(length=128), nullable=True),
        sa.Column("claim_id", sa.String(length=128), nullable=False),
        sa.Column("settlement_id", sa.String(length=64), nullable=True),
        sa.Column("ours_fen", FEN, nullable=True),
        sa.Column("theirs_fen", FEN, nullable=True),
        sa.Column("line", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["reconciliation_runs.id"],
            name=op.f("fk_reconciliation_items_run_id_reconciliation_runs"),
        ),
        sa.PrimaryKeyConstraint("run_id", "seq", name=op.f("pk_reconciliation_items")),
    )


def downgrade() -> None:
    op.drop_table("reconciliation_items")
    op.drop_table("reconciliation_runs")
    op.drop_index("uq_period_closes_first", table_name="period_closes")
    op.drop_table("period_closes")
