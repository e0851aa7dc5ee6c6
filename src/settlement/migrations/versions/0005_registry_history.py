"""Person registry: name, district, and the append-only history of every change.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 20:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# column types of settlement.service.db, spelled out: this file must not change with the code
SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)  # UTC
JSON = sa.JSON()
DISTRICT_CHECK = "district IS NULL OR length(district) = 6"

# person_history is append-only: the database itself refuses edits (PostgreSQL also deletes;
# SQLite's tests empty tables with DELETE, PostgreSQL's with TRUNCATE, which no row trigger sees)
PG_APPEND_ONLY = """
CREATE FUNCTION person_history_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'person_history is append-only: % refused', TG_OP;
END $$;
CREATE TRIGGER person_history_append_only BEFORE UPDATE OR DELETE ON person_history
    FOR EACH ROW EXECUTE FUNCTION person_history_append_only();
"""
SQLITE_APPEND_ONLY = """
CREATE TRIGGER person_history_append_only BEFORE UPDATE ON person_history
BEGIN SELECT RAISE(ABORT, 'person_history is append-only: UPDATE refused'); END
"""


def upgrade() -> None:
    # plain ADD COLUMN on both databases: a SQLite batch rebuild of persons would drop the
    # table its periods reference ON DELETE CASCADE; SQLite takes the CHECK in the column
    op.add_column("persons", sa.Column("name", sa.String(length=100), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.add_column("persons", sa.Column("district", sa.String(length=6), nullable=True))
        op.create_check_constraint(op.f("ck_persons_district"), "persons", DISTRICT_CHECK)
    else:
        op.execute(
            "ALTER TABLE persons ADD COLUMN district VARCHAR(6)"
            f" CONSTRAINT ck_persons_district CHECK ({DISTRICT_CHECK})"
        )
    op.create_index("ix_persons_district_person_id", "persons", ["district", "person_id"])
    op.create_table(
        "person_history",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("person_id", sa.String(length=18), nullable=False),
        sa.Column("changed_at", TIMESTAMP, nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("before", JSON, nullable=True),
        sa.Column("after", JSON, nullable=False),
        sa.CheckConstraint("source IN ('put', 'import')", name=op.f("ck_person_history_source")),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.person_id"], name=op.f("fk_person_history_person_id_persons")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_person_history")),
    )
    op.create_index("ix_person_history_person_id_id", "person_history", ["person_id", "id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_APPEND_ONLY)
    else:
        op.execute(SQLITE_APPEND_ONLY)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS person_history_append_only ON person_history")
        op.execute("DROP FUNCTION IF EXISTS person_history_append_only()")
    op.drop_index("ix_person_history_person_id_id", table_name="person_history")
    op.drop_table("person_history")
    op.drop_index("ix_persons_district_person_id", table_name="persons")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(op.f("ck_persons_district"), "persons", type_="check")
    op.drop_column("persons", "district")
    op.drop_column("persons", "name")
