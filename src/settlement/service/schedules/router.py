"""HTTP routes listing the loaded fee schedule versions."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from settlement.money import RATE_SCALE, format_fen
from settlement.schedules.types import ScheduleVersion
from settlement.service.deps import AnyKey, Ctx
from settlement.service.errors import not_found

router = APIRouter(prefix="/v1/schedules", tags=["schedules"])


class ScheduleSummary(BaseModel):
    id: str
    region: str
    name: str
    effective_from: dt.date
    effective_to: dt.date | None
    in_force_today: bool
    catalog_items: int
    charity_funds: list[str]


def _plain(value: Any) -> Any:
    """Schedule values as JSON: *_fen as yuan strings, *_bp as decimal fractions."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for field in dataclasses.fields(value):
            item = getattr(value, field.name)
            name = field.name
            if name.endswith("_fen"):
                out[name.removesuffix("_fen")] = _money(item)
            elif name.endswith("_bp"):
                out[name.removesuffix("_bp")] = _rate(item)
            else:
                out[name] = _plain(item)
        return out
    if isinstance(value, dict):
        return {
            ".".join(map(str, k)) if isinstance(k, tuple) else str(k): _plain(v)
            for k, v in value.items()
        }
    if isinstance(value, frozenset | set):
        return sorted(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _money(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _money(v) for k, v in value.items()}
    return None if value is None else format_fen(value)


def _rate(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _rate(v) for k, v in value.items()}
    return None if value is None else str((Decimal(value) / RATE_SCALE).normalize())


def _summary(versions: tuple[ScheduleVersion, ...], i: int, today: dt.date) -> ScheduleSummary:
    version = versions[i]
    end = versions[i + 1].effective_from - dt.timedelta(days=1) if i + 1 < len(versions) else None
    return ScheduleSummary(
        id=version.id,
        region=version.region,
        name=version.name,
        effective_from=version.effective_from,
        effective_to=end,
        in_force_today=version.effective_from <= today and (end is None or today <= end),
        catalog_items=len(version.catalog),
        charity_funds=[f.id for f in version.charity_funds],
    )


@router.get("", response_model=list[ScheduleSummary], summary="The schedule versions, oldest first")
def list_schedules(principal: AnyKey, ctx: Ctx) -> list[ScheduleSummary]:
    versions = ctx.tables.schedules.versions
    today = ctx.today()
    return [_summary(versions, i, today) for i in range(len(versions))]


@router.get(
    "/{schedule_id}", summary="One schedule version: its parameters (catalog counted, not listed)"
)
def get_schedule(schedule_id: str, principal: AnyKey, ctx: Ctx) -> dict[str, Any]:
    versions = ctx.tables.schedules.versions
    for i, version in enumerate(versions):
        if version.id == schedule_id:
            summary = _summary(versions, i, ctx.today()).model_dump(mode="json")
            params = _plain(dataclasses.replace(version, catalog={}))
            params.pop("catalog", None)
            params.pop("source", None)
            return {**summary, "parameters": params}
    raise not_found(f"no schedule version {schedule_id}")
