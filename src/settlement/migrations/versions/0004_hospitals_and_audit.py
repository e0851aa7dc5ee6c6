"""Hospital registry, its history, preview records.

``hospitals``: the level the counter settles a hospital's claims at (and its
name and district); ``hospital_history``: every change to an entry (who,
when, before, after), insert-only; ``preview_records``: who previewed which
person's claim, when (written in batches: previews.recorder).

A database upgraded with settlements in it needs its hospitals registered
(``PUT /v1/hospitals/{id}``) before the counter accepts their claims again.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 20:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# column types of settlement.service.db, spelled out: this file must not change with the code
SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)  # UTC


def upgrade() -> None:
    op.create_table(
        "hospitals",
        sa.Column("hospital_id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("district", sa.String(12), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("level IN (1, 2, 3)", name=op.f("ck_hospitals_level")),
        sa.PrimaryKeyConstraint("hospital_id", name=op.f("pk_hospitals")),
    )
    op.create_table(
        "hospital_history",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("hospital_id", sa.String(128), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hospital_history")),
    )
    op.create_index("ix_hospital_history_hospital_id_id", "hospital_history", ["hospital_id", "id"])
    op.create_table(
        "preview_records",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("hospital_id", sa.String(128), nullable=False),
        sa.Column("person_id", sa.String(18), nullable=False),
        sa.Column("claim_id", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_preview_records")),
    )
    op.create_index("ix_preview_records_person_id_id", "preview_records", ["person_id", "id"])
    op.create_index("ix_preview_records_hospital_id_id", "preview_records", ["hospital_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_preview_records_hospital_id_id", table_name="preview_records")
    op.drop_index("ix_preview_records_person_id_id", table_name="preview_records")
    op.drop_table("preview_records")
    op.drop_index("ix_hospital_history_hospital_id_id", table_name="hospital_history")
    op.drop_table("hospital_history")
    op.drop_table("hospitals")
