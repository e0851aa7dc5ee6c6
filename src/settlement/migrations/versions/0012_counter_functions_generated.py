"""PostgreSQL: counter_settle and counter_reverse generated from the declaration of the totals.

Their text is now :mod:`settlement.service.settlements.pgfunctions`, whose
person-year column lists come from ``settlement.engine.totals.TOTALS``; the
functions are *repeatable*: ``settlement db upgrade`` (service.migrate.upgrade)
re-creates them from the current declaration after every upgrade that ends at
head. This revision re-creates them once (CREATE OR REPLACE, the signatures of
0002 unchanged), so a database at 0012 has them whichever way it was upgraded.

In meaning they are 0002's, but for one thing: a reversal takes a total the
settlement's contribution does not name as 0 (a settlement recorded before
that total existed added nothing to it; 0002 took that for the per-visit-type
basic totals only, and every contribution written so far names every total).
Downgrade leaves them: 0002's downgrade drops them by signature.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 02:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from settlement.service.settlements.pgfunctions import statements

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # the embedded SQLite default keeps the portable path
    for statement in statements().values():
        op.execute(statement)


def downgrade() -> None:
    pass  # the same functions in meaning for 0011's totals (see above)
