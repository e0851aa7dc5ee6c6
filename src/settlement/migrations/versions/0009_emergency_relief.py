"""Emergency relief (疾病应急救助, SPEC §5.5, §9): unidentified patients and the hospital's declarations.

- settlements: ``temporary_id`` (an unidentified patient's), ``emergency`` and
  ``unable_to_pay`` (the hospital's declarations, stored with the settlement),
  ``emergency_relief_fen`` (in ``amounts_add_up``); ``person_id``, ``scheme``
  and ``category`` may be NULL, for an unidentified patient only: CHECK
  ``one_patient`` (exactly one of person_id and temporary_id);
- ledger_entries: the layer ``emergency_relief``.

The pool of the emergency relief fund is a fund_pools row like a charity
fund's (fund_id ``emergency_relief``). The counter's functions of 0002 are
unchanged: counter_settle never writes an emergency claim (the counter sends
those the locked way) and leaves the new columns at their defaults;
counter_reverse gives back whatever pools a contribution names.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 20:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ADD_UP = (
    "total_fen = basic_fen + critical_illness_fen + medical_assistance_fen + charity_fen"
    " + {er}backstop_fen + patient_pays_fen + hospital_bears_fen"
)
AMOUNTS = (
    "total", "fully_self_paid", "over_limit", "pre_self_paid", "in_scope", "deductible", "basic",
    "critical_illness", "medical_assistance", "charity", "backstop", "patient_pays", "hospital_bears",
)
LAYERS = "'basic', 'critical_illness', 'medical_assistance', 'charity', {er}'backstop', 'patient', 'hospital'"


def upgrade() -> None:
    with op.batch_alter_table("settlements") as batch:
        batch.add_column(sa.Column("temporary_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("emergency", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.add_column(sa.Column("unable_to_pay", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.add_column(
            sa.Column("emergency_relief_fen", sa.BigInteger(), server_default=sa.text("0"), nullable=False)
        )
        for column, length in (("person_id", 18), ("scheme", 16), ("category", 32)):
            batch.alter_column(column, existing_type=sa.String(length=length), nullable=True)
        batch.drop_constraint(op.f("ck_settlements_amounts_add_up"), type_="check")
        batch.create_check_constraint(
            op.f("ck_settlements_amounts_add_up"), ADD_UP.format(er="emergency_relief_fen + ")
        )
        batch.drop_constraint(op.f("ck_settlements_non_negative"), type_="check")
        batch.create_check_constraint(
            op.f("ck_settlements_non_negative"),
            " AND ".join(f"{name}_fen >= 0" for name in (*AMOUNTS, "emergency_relief")),
        )
        batch.create_check_constraint(
            op.f("ck_settlements_one_patient"), "(person_id IS NULL) <> (temporary_id IS NULL)"
        )
    with op.batch_alter_table("ledger_entries") as batch:
        batch.drop_constraint(op.f("ck_ledger_entries_layer"), type_="check")
        layers = LAYERS.format(er="'emergency_relief', ")
        batch.create_check_constraint(op.f("ck_ledger_entries_layer"), f"layer IN ({layers})")


def downgrade() -> None:
    # refuses (a CHECK fails) while any emergency relief settlement or unidentified patient is stored
    with op.batch_alter_table("ledger_entries") as batch:
        batch.drop_constraint(op.f("ck_ledger_entries_layer"), type_="check")
        batch.create_check_constraint(op.f("ck_ledger_entries_layer"), f"layer IN ({LAYERS.format(er='')})")
    with op.batch_alter_table("settlements") as batch:
        batch.drop_constraint(op.f("ck_settlements_one_patient"), type_="check")
        batch.drop_constraint(op.f("ck_settlements_non_negative"), type_="check")
        batch.create_check_constraint(
            op.f("ck_settlements_non_negative"), " AND ".join(f"{name}_fen >= 0" for name in AMOUNTS)
        )
        batch.drop_constraint(op.f("ck_settlements_amounts_add_up"), type_="check")
        batch.create_check_constraint(op.f("ck_settlements_amounts_add_up"), ADD_UP.format(er=""))
        for column, length in (("person_id", 18), ("scheme", 16), ("category", 32)):
            batch.alter_column(column, existing_type=sa.String(length=length), nullable=False)
        batch.drop_column("emergency_relief_fen")
        batch.drop_column("unable_to_pay")
        batch.drop_column("emergency")
        batch.drop_column("temporary_id")
