# ruff: noqa: E501
"""Initial schema: registry, keys, accumulators, pools, settlements, events, ledger.

Revision ID: 0001
Revises:
Create Date: 2026-11-29 01:20:15.162753
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# column types of settlement.service.db, spelled out: this file must not change with the code
SERIAL = sa.BigInteger().with_variant(
    sa.Integer(), "sqlite"
)  # autoincrementing key (INTEGER on SQLite)
FEN = sa.BigInteger()  # money, integer fen
TIMESTAMP = sa.DateTime(timezone=True)  # UTC
JSON = sa.JSON()  # json, not jsonb: kept as written


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(length=12), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("hospital_id", sa.String(length=128), nullable=True),
        sa.Column("funds", sa.Text(), nullable=True),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("revoked_at", TIMESTAMP, nullable=True),
        sa.CheckConstraint(
            "(role = 'hospital') = (hospital_id IS NOT NULL)",
            name=op.f("ck_api_keys_hospital_binding"),
        ),
        sa.CheckConstraint(
            "role IN ('hospital', 'reviewer', 'insurer', 'admin')", name=op.f("ck_api_keys_role")
        ),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_api_keys")),
    )
    op.create_table(
        "fund_pools",
        sa.Column("fund_id", sa.String(length=64), nullable=False),
        sa.Column("policy_year", sa.Integer(), nullable=False),
        sa.Column("used", FEN, nullable=False),
        sa.CheckConstraint("used >= 0", name=op.f("ck_fund_pools_non_negative")),
        sa.PrimaryKeyConstraint("fund_id", "policy_year", name=op.f("pk_fund_pools")),
    )
    op.create_table(
        "persons",
        sa.Column("person_id", sa.String(length=18), nullable=False),
        sa.Column("scheme", sa.String(length=16), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("updated_by", sa.String(length=12), nullable=True),
        sa.CheckConstraint("scheme IN ('resident', 'employee')", name=op.f("ck_persons_scheme")),
        sa.PrimaryKeyConstraint("person_id", name=op.f("pk_persons")),
    )
    op.create_table(
        "settlements",
        sa.Column("seq", SERIAL, autoincrement=True, nullable=False),
        sa.Column("settlement_id", sa.String(length=36), nullable=False),
        sa.Column("hospital_id", sa.String(length=128), nullable=False),
        sa.Column("claim_id", sa.String(length=128), nullable=False),
        sa.Column("claim_hash", sa.String(length=64), nullable=False),
        sa.Column("request_body", sa.Text(), nullable=False),
        sa.Column("key_id", sa.String(length=12), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("settled_at", TIMESTAMP, nullable=False),
        sa.Column("reversed_at", TIMESTAMP, nullable=True),
        sa.Column("person_id", sa.String(length=18), nullable=False),
        sa.Column("scheme", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("visit_type", sa.String(length=32), nullable=False),
        sa.Column("admitted", sa.Date(), nullable=False),
        sa.Column("discharged", sa.Date(), nullable=False),
        sa.Column("policy_year", sa.Integer(), nullable=False),
        sa.Column("schedule_version", sa.String(length=128), nullable=False),
        sa.Column("pathway", sa.String(length=32), nullable=False),
        sa.Column("disease_group", sa.String(length=128), nullable=True),
        sa.Column("total_fen", FEN, nullable=False),
        sa.Column("fully_self_paid_fen", FEN, nullable=False),
        sa.Column("over_limit_fen", FEN, nullable=False),
        sa.Column("pre_self_paid_fen", FEN, nullable=False),
        sa.Column("in_scope_fen", FEN, nullable=False),
        sa.Column("deductible_fen", FEN, nullable=False),
        sa.Column("basic_fen", FEN, nullable=False),
        sa.Column("critical_illness_fen", FEN, nullable=False),
        sa.Column("medical_assistance_fen", FEN, nullable=False),
        sa.Column("charity_fen", FEN, nullable=False),
        sa.Column("backstop_fen", FEN, nullable=False),
        sa.Column("patient_pays_fen", FEN, nullable=False),
        sa.Column("hospital_bears_fen", FEN, nullable=False),
        sa.Column("result", JSON, nullable=False),
        sa.Column("trace", JSON, nullable=False),
        sa.Column("accumulators_after", JSON, nullable=False),
        sa.Column("contribution", JSON, nullable=False),
        sa.CheckConstraint("status IN ('settled', 'reversed')", name=op.f("ck_settlements_status")),
        sa.CheckConstraint(
            "total_fen = basic_fen + critical_illness_fen + medical_assistance_fen + charity_fen + backstop_fen + patient_pays_fen + hospital_bears_fen",
            name=op.f("ck_settlements_amounts_add_up"),
        ),
        sa.CheckConstraint(
            "total_fen >= 0 AND fully_self_paid_fen >= 0 AND over_limit_fen >= 0 AND pre_self_paid_fen >= 0 AND in_scope_fen >= 0 AND deductible_fen >= 0 AND basic_fen >= 0 AND critical_illness_fen >= 0 AND medical_assistance_fen >= 0 AND charity_fen >= 0 AND backstop_fen >= 0 AND patient_pays_fen >= 0 AND hospital_bears_fen >= 0",
            name=op.f("ck_settlements_non_negative"),
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_settlements")),
        sa.UniqueConstraint(
            "hospital_id", "claim_id", name=op.f("uq_settlements_hospital_id_claim_id")
        ),
        sa.UniqueConstraint("settlement_id", name=op.f("uq_settlements_settlement_id")),
    )
    op.create_index("ix_settlements_discharged", "settlements", ["discharged"], unique=False)
    op.create_index(
        "ix_settlements_hospital_id_seq", "settlements", ["hospital_id", "seq"], unique=False
    )
    op.create_index(
        "ix_settlements_person_id_policy_year",
        "settlements",
        ["person_id", "policy_year"],
        unique=False,
    )
    op.create_table(
        "person_categories",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("person_id", sa.String(length=18), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.CheckConstraint(
            "category IN ('none', 'extreme_poverty', 'subsistence_allowance', 'registered_poor', 'low_income', 'illness_impoverished')",
            name=op.f("ck_person_categories_category"),
        ),
        sa.CheckConstraint(
            "valid_to IS NULL OR valid_to >= valid_from",
            name=op.f("ck_person_categories_period_order"),
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["persons.person_id"],
            name=op.f("fk_person_categories_person_id_persons"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_person_categories")),
    )
    op.create_index(
        "ix_person_categories_person_id_valid_from",
        "person_categories",
        ["person_id", "valid_from"],
        unique=False,
    )
    op.create_table(
        "person_year_accumulators",
        sa.Column("person_id", sa.String(length=18), nullable=False),
        sa.Column("policy_year", sa.Integer(), nullable=False),
        sa.Column("basic_paid_inpatient", FEN, nullable=False),
        sa.Column("basic_paid_outpatient", FEN, nullable=False),
        sa.Column("basic_paid_chronic_outpatient", FEN, nullable=False),
        sa.Column("critical_base", FEN, nullable=False),
        sa.Column("critical_paid", FEN, nullable=False),
        sa.Column("assistance_base", FEN, nullable=False),
        sa.Column("assistance_paid", FEN, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=True),
        sa.CheckConstraint(
            "basic_paid_inpatient >= 0 AND basic_paid_outpatient >= 0 AND basic_paid_chronic_outpatient >= 0 AND critical_base >= 0 AND critical_paid >= 0 AND assistance_base >= 0 AND assistance_paid >= 0",
            name=op.f("ck_person_year_accumulators_non_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["persons.person_id"],
            name=op.f("fk_person_year_accumulators_person_id_persons"),
        ),
        sa.PrimaryKeyConstraint(
            "person_id", "policy_year", name=op.f("pk_person_year_accumulators")
        ),
    )
    op.create_table(
        "settlement_events",
        sa.Column("seq", SERIAL, autoincrement=True, nullable=False),
        sa.Column("settlement_seq", SERIAL, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("key_id", sa.String(length=12), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('settled', 'reversed')", name=op.f("ck_settlement_events_kind")
        ),
        sa.ForeignKeyConstraint(
            ["settlement_seq"],
            ["settlements.seq"],
            name=op.f("fk_settlement_events_settlement_seq_settlements"),
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_settlement_events")),
        sa.UniqueConstraint(
            "settlement_seq", "kind", name=op.f("uq_settlement_events_settlement_seq_kind")
        ),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("settlement_seq", SERIAL, nullable=False),
        sa.Column("event_seq", SERIAL, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("hospital_id", sa.String(length=128), nullable=False),
        sa.Column("layer", sa.String(length=32), nullable=False),
        sa.Column("fund", sa.String(length=64), nullable=False),
        sa.Column("amount_fen", FEN, nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(
            "(kind = 'settled' AND amount_fen > 0) OR (kind = 'reversed' AND amount_fen < 0)",
            name=op.f("ck_ledger_entries_sign"),
        ),
        sa.CheckConstraint(
            "layer IN ('basic', 'critical_illness', 'medical_assistance', 'charity', 'backstop', 'patient', 'hospital')",
            name=op.f("ck_ledger_entries_layer"),
        ),
        sa.ForeignKeyConstraint(
            ["event_seq"],
            ["settlement_events.seq"],
            name=op.f("fk_ledger_entries_event_seq_settlement_events"),
        ),
        sa.ForeignKeyConstraint(
            ["settlement_seq"],
            ["settlements.seq"],
            name=op.f("fk_ledger_entries_settlement_seq_settlements"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
    )
    op.create_index(
        "ix_ledger_entries_business_date_hospital_id_fund",
        "ledger_entries",
        ["business_date", "hospital_id", "fund"],
        unique=False,
    )
    op.create_index(
        "ix_ledger_entries_settlement_seq", "ledger_entries", ["settlement_seq"], unique=False
    )
    op.create_table(
        "person_year_charity",
        sa.Column("person_id", sa.String(length=18), nullable=False),
        sa.Column("policy_year", sa.Integer(), nullable=False),
        sa.Column("fund_id", sa.String(length=64), nullable=False),
        sa.Column("paid", FEN, nullable=False),
        sa.CheckConstraint("paid >= 0", name=op.f("ck_person_year_charity_non_negative")),
        sa.ForeignKeyConstraint(
            ["person_id", "policy_year"],
            ["person_year_accumulators.person_id", "person_year_accumulators.policy_year"],
            name="fk_person_year_charity_person_year",
        ),
        sa.PrimaryKeyConstraint(
            "person_id", "policy_year", "fund_id", name=op.f("pk_person_year_charity")
        ),
    )


def downgrade() -> None:
    op.drop_table("person_year_charity")
    op.drop_index("ix_ledger_entries_settlement_seq", table_name="ledger_entries")
    op.drop_index("ix_ledger_entries_business_date_hospital_id_fund", table_name="ledger_entries")
    op.drop_table("ledger_entries")
    op.drop_table("settlement_events")
    op.drop_table("person_year_accumulators")
    op.drop_index("ix_person_categories_person_id_valid_from", table_name="person_categories")
    op.drop_table("person_categories")
    op.drop_index("ix_settlements_person_id_policy_year", table_name="settlements")
    op.drop_index("ix_settlements_hospital_id_seq", table_name="settlements")
    op.drop_index("ix_settlements_discharged", table_name="settlements")
    op.drop_table("settlements")
    op.drop_table("persons")
    op.drop_table("fund_pools")
    op.drop_table("api_keys")
