"""HTTP route of what-if simulations (admins): JSON, or the HTML report with Accept: text/html or format=html."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from settlement.service.auth.keys import Role
from settlement.service.auth.service import Principal
from settlement.service.deps import PROBLEM, Ctx, require
from settlement.service.errors import invalid_request
from settlement.service.strict import form_date, form_file, read_form

from . import service

router = APIRouter(prefix="/v1/simulations", tags=["simulations"])
AdminKey = Annotated[Principal, Depends(require(Role.ADMIN))]
FIELDS = {"from", "to", "file", "by", "format"}


@router.post(
    "",
    summary="What-if (政策测算): a draft region (zip) against the service's schedules on the stored claims"
    " discharged in the period; refused (422) while the draft fails schedules validate",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["from", "to", "file"],
                        "additionalProperties": False,
                        "properties": {
                            "from": {"type": "string", "format": "date"},
                            "to": {"type": "string", "format": "date", "description": "not before from (422)"},
                            "file": {
                                "type": "string",
                                "format": "binary",
                                "description": "the draft region, zipped (not a zip: 422)",
                            },
                            "by": {
                                "type": "string",
                                "description": "from category,level,month,visit_type,pathway (another key: 422)",
                            },
                            "format": {"type": "string", "enum": ["json", "html"]},
                        },
                    }
                }
            },
        }
    },
    responses={200: {"content": {"text/html": {}}}, 400: PROBLEM, 403: PROBLEM, 422: PROBLEM},
)
async def simulate(request: Request, principal: AdminKey, ctx: Ctx) -> Any:
    form = await read_form(
        request, FIELDS, "send multipart/form-data with the fields from, to and file (the draft as a zip)"
    )
    start, end = form_date(form.get("from"), "from"), form_date(form.get("to"), "to")
    upload = form_file(form, "file", "send the draft region as a zip in the form field 'file'")
    data = await upload.read()
    by_field = form.get("by")
    by = [k.strip() for k in by_field.split(",") if k.strip()] if isinstance(by_field, str) else []
    fmt = form.get("format")
    html = fmt == "html" or (fmt is None and "text/html" in request.headers.get("accept", ""))
    if fmt not in (None, "json", "html"):
        raise invalid_request(f"unknown format {fmt!r}", [{"field": "format", "message": "json or html"}])

    def work() -> dict[str, Any]:
        with ctx.db.read() as session:
            return service.run(session, ctx, start, end, data, by)

    report = await run_in_threadpool(work)
    if html:
        from settlement.simulate_report import render

        page = await run_in_threadpool(
            render,
            report,
            by,
            ctx.tables.schedules.region_dir,
            upload.filename or "draft.zip",
            f"stored claims discharged {start} – {end}",
        )
        return HTMLResponse(page)
    return report
