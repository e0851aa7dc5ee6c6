"""Staff accounts of insurers limited to funds, like insurer API keys: ``staff_users.funds``
(comma-separated fund ids; null: every fund; only insurer accounts have one).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 23:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("staff_users", sa.Column("funds", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("staff_users") as batch:
        batch.drop_column("funds")
