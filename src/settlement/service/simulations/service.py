"""A draft region (a zip) run against the service's schedules on the stored claims of a period.

The draft must pass the strict loader (``settlement schedules validate``):
otherwise 422 with every defect, and nothing runs. The claims are the settled
(not reversed) settlements discharged in the period, in commit order, each
with the scheme and category it was settled with (``audit.claim_line``); both
sides run through ``settlement.simulate.Simulation`` — the command's code.
"""

from __future__ import annotations

import datetime as dt
import io
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from settlement.audit import claim_line
from settlement.engine import compile_tables
from settlement.schedules import ScheduleError, load_region
from settlement.service.config import region_dir
from settlement.service.context import ServiceContext
from settlement.service.errors import ServiceError
from settlement.service.settlements.models import Settlement
from settlement.simulate import GROUP_KEYS, Simulation

CHUNK = 20_000
MAX_UNZIPPED_BYTES = 64 << 20


def refused(detail: str, field: str, message: str) -> ServiceError:
    """422: the form is as documented (a binary, two dates, a string) but a rule refuses it (service.openapi)."""
    return ServiceError(422, "invalid_request", detail, errors=[{"field": field, "message": message}])


def _unzip(data: bytes, into: Path) -> Path:
    """The zip's files under `into` (no absolute paths, no '..', bounded size); the region folder in it."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise refused("the draft is not a zip file", "file", "not a zip") from None
    total = 0
    for info in archive.infolist():
        name = Path(info.filename)
        if name.is_absolute() or ".." in name.parts:
            raise refused(f"the zip holds a path outside its folder: {info.filename}", "file", "path outside")
        total += info.file_size
        if total > MAX_UNZIPPED_BYTES:
            raise ServiceError(413, "payload_too_large", "the draft unzips to more than 64 MiB")
    archive.extractall(into)
    roots = [p for p in into.iterdir() if p.is_dir()]
    if not any(into.glob("*/schedule.yaml")) and len(roots) == 1:
        return region_dir(roots[0])
    return region_dir(into)


def run(
    session: Session,
    ctx: ServiceContext,
    start: dt.date,
    end: dt.date,
    draft_zip: bytes,
    by: list[str],
) -> dict[str, Any]:
    """The simulate report (the JSON of `settlement simulate --json`) plus the period and the draft's versions."""
    if end < start:
        raise refused(f"to ({end}) is before from ({start})", "to", "before from")
    unknown = [k for k in by if k not in GROUP_KEYS]
    if unknown:
        raise refused(f"cannot group by {', '.join(unknown)}", "by", f"from {', '.join(GROUP_KEYS)}")
    with tempfile.TemporaryDirectory(prefix="settlement-draft-") as tmp:
        folder = _unzip(draft_zip, Path(tmp))
        try:
            draft = load_region(folder)
        except ScheduleError as exc:
            defects = [d.replace(tmp + "/", "") for d in exc.defects]
            raise ServiceError(
                422,
                "invalid_schedules",
                f"the draft does not pass schedules validate: {len(defects)} defect(s)",
                errors=[{"message": d} for d in defects],
            ) from None
        draft_tables = compile_tables(draft)
        versions = [v.id for v in draft.versions]
    sim = Simulation(ctx.tables, draft_tables, by)
    query = (
        select(Settlement.request_body, Settlement.scheme, Settlement.category)
        .where(Settlement.status == "settled", Settlement.discharged.between(start, end))
        .order_by(Settlement.seq)
        .execution_options(yield_per=CHUNK)
    )
    for part in session.execute(query).partitions(CHUNK):
        sim.add_lines([claim_line(body, scheme, category) for body, scheme, category in part])
    return {**sim.report(), "from": start.isoformat(), "to": end.isoformat(), "draft_versions": versions}
