"""The insurers' pages: a fund's statements by month with its month closes (月结), and reconciliation (对账).

Same sign-in as the review workspace. Who sees what is the API's rule, through the same service functions
called with the signed-in user's principal: an insurer account sees the funds it is limited to
(``users create --fund``; none: every fund) and closes their months only when limited, as an insurer key;
an admin sees and closes every fund. Reviewers are refused (403), as their API keys are refused the
statements and reconciliations; insurers are refused the review and registry pages in turn.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from settlement.catalog import Message, MessageError
from settlement.reconcile import DIFFERENCES, ITEM_COLUMNS, KINDS, Defects, InputDefects, parse_amount
from settlement.service.accounts.service import SignedIn
from settlement.service.deps import Ctx
from settlement.service.errors import ServiceError, forbidden, invalid_request
from settlement.service.exports import Format, file_response
from settlement.service.funds.service import fund_ids
from settlement.service.reconciliations import service as reconciliations
from settlement.service.statements import service as statements
from settlement.service.statements.service import LINE_COLUMNS, ROW_COLUMNS, month_bounds, month_of

from . import charts
from .i18n import N_
from .labels import ERROR_LABELS, ERROR_OTHER, LAYER_LABELS
from .render import gettext_for, language_of, page
from .routes_review import parse_date, query_filters
from .session import User, check_csrf, require_role

router = APIRouter(include_in_schema=False)

INSURERS = ("insurer", "admin")
NOT_FUNDS = ("patient", "hospital")
"""fund_ids' two shares that are nobody's fund: no statement page offers them."""
DOWNLOADS: tuple[Format, ...] = ("xlsx", "csv")
KIND_LABELS = {
    "matched": N_("Matched"),
    "amount_mismatch": N_("Amount differs"),
    "only_ours": N_("Only in our ledger"),
    "only_theirs": N_("Only in their file"),
    "duplicate_theirs": N_("Duplicate in their file"),
    "reversed_ours": N_("Reversed by us in the period"),
}
"""The kinds' words (English msgids; Chinese in the catalog as reconcile.KIND_LABELS: 一致, 金额不符 …)."""


def visible_funds(ctx: Any, user: SignedIn) -> list[str]:
    """The funds the user may open, in settling order."""
    return [f for f in fund_ids(ctx) if f not in NOT_FUNDS and user.principal.sees_fund(f)]


def fund_names(ctx: Any, gettext: Any) -> dict[str, str]:
    """A fund's name for people: the layer's word, or the charity fund's name in the schedules."""
    names = {f.id: f.name for v in ctx.tables.schedules.versions for f in v.charity_funds}
    return {f: gettext(LAYER_LABELS[f]) if f in LAYER_LABELS else names.get(f, f) for f in fund_ids(ctx)}


def can_close(user: SignedIn) -> bool:
    """An admin, or an insurer limited to funds (close_period checks the fund itself)."""
    return user.role == "admin" or (user.role == "insurer" and user.funds is not None)


def _months_back(day: dt.date, n: int) -> dt.date:
    index = day.year * 12 + day.month - 1 - n
    return dt.date(index // 12, index % 12 + 1, 1)


def _period(request: Request, ctx: Any, user: SignedIn, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """fund, from, to and hospital_id of a statement URL; defaults: the first fund, the last twelve months."""
    filters = query_filters(request, ("fund", "from", "to", "hospital_id", *extra))
    funds = visible_funds(ctx, user)
    if not funds:
        raise forbidden("this account sees no fund")
    today = ctx.today()
    start = parse_date(filters, "from") or _months_back(today, 11)
    end = parse_date(filters, "to") or today
    return {"filters": filters, "funds": funds, "fund": filters.get("fund") or funds[0], "from": start, "to": end,
            "hospital_id": filters.get("hospital_id")}


def by_month(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A month statement's rows (per hospital and adjusted month) summed per month."""
    months: dict[str, dict[str, Any]] = {}
    for r in rows:
        m = months.setdefault(r["period"], {"period": r["period"], "settlements": 0, "reversals": 0, "amount": 0})
        for key in ("settlements", "reversals", "amount"):
            m[key] += r[key]
    return [months[k] for k in sorted(months)]


def _next_close(closes: list[dict[str, Any]], today: dt.date) -> str:
    """The month a close form offers: the one after the last closed, else last month."""
    if closes:
        return month_of(month_bounds(closes[-1]["period"])[1] + dt.timedelta(days=1))
    return month_of(_months_back(today, 1))


@router.get("/insurers")
def insurers_home(user: User) -> Response:
    require_role(user, *INSURERS)
    return RedirectResponse("/insurers/statements", status_code=303)


@router.get("/insurers/statements")
def statements_page(request: Request, ctx: Ctx, user: User) -> Response:
    require_role(user, *INSURERS)
    gettext = gettext_for(language_of(request, user))
    p = _period(request, ctx, user, ("closed",))
    with ctx.db.read() as session:
        out = statements.statement(session, ctx, user.principal, p["fund"], p["from"], p["to"],
                                   hospital_id=p["hospital_id"], by="month")
        closes = statements.list_closes(session, ctx, user.principal, p["fund"])
    months = by_month(out["rows"])
    for c in closes:
        c["amount_fen"] = parse_amount(c["amount"])
    today = ctx.today()
    query = urlencode({k: v for k, v in (("fund", p["fund"]), ("from", p["from"]), ("to", p["to"]),
                                         ("hospital_id", p["hospital_id"])) if v})
    return page(
        request, "insurers/statements.html", user, p=p, out=out, months=months, closes=closes, query=query,
        names=fund_names(ctx, gettext), amount_chart=charts.month_amounts(months, gettext) if months else "",
        count_chart=charts.month_counts(months, gettext) if months else "", can_close=can_close(user),
        next_close=_next_close(closes, today), just_closed=p["filters"].get("closed"), downloads=DOWNLOADS,
    )


def _download_format(request: Request) -> Format:
    fmt = request.query_params.get("format", "xlsx")
    if fmt not in DOWNLOADS:
        raise invalid_request(f"format: one of {', '.join(DOWNLOADS)}, not {fmt!r}")
    return fmt


@router.get("/insurers/statements/download")
def statement_download(request: Request, ctx: Ctx, user: User) -> Response:
    """The statement of the page (rows per month and hospital) as the API's GET /v1/statements file."""
    require_role(user, *INSURERS)
    p = _period(request, ctx, user, ("format",))
    fmt = _download_format(request)
    with ctx.db.read() as session:
        out = statements.statement(session, ctx, user.principal, p["fund"], p["from"], p["to"],
                                   hospital_id=p["hospital_id"], by="month")
    return file_response(fmt, ROW_COLUMNS, out["rows"], f"statement-{p['fund']}-{p['from']}-{p['to']}",
                         sheet="对账单")


@router.get("/insurers/statements/lines")
def lines_download(request: Request, ctx: Ctx, user: User) -> Response:
    """The statement's ledger lines as the API's GET /v1/statements/lines file (streamed)."""
    require_role(user, *INSURERS)
    p = _period(request, ctx, user, ("format",))
    fmt = _download_format(request)
    principal = user.principal
    with ctx.db.read() as session:  # the fund's checks, before the stream starts
        statements.lines(session, ctx, principal, p["fund"], p["from"], p["to"])

    def stream() -> Iterator[dict[str, Any]]:
        with ctx.db.read() as session:
            yield from statements.lines(session, ctx, principal, p["fund"], p["from"], p["to"],
                                        hospital_id=p["hospital_id"])

    return file_response(fmt, LINE_COLUMNS, stream(), f"statement-lines-{p['fund']}-{p['from']}-{p['to']}",
                         sheet="明细")


@router.get("/insurers/statements/close")
def close_confirm(request: Request, ctx: Ctx, user: User) -> Response:
    """What closing the month would freeze (its statement now), and the button that closes it."""
    require_role(user, *INSURERS)
    filters = query_filters(request, ("fund", "period"))
    fund, period = filters.get("fund", ""), filters.get("period", "")
    if not can_close(user):
        raise forbidden("only an admin or an insurer limited to this fund may close its months")
    gettext = gettext_for(language_of(request, user))
    first, last = month_bounds(period)
    with ctx.db.read() as session:
        out = statements.statement(session, ctx, user.principal, fund, first, last, by="month")
    return page(request, "insurers/close.html", user, fund=fund, period=period, out=out,
                names=fund_names(ctx, gettext))


@router.post("/insurers/statements/close")
async def close(request: Request, ctx: Ctx, user: User) -> Response:
    """Closes the month (statements.service.close_period, as POST /v1/statements/{fund}/{period}/close)."""
    require_role(user, *INSURERS)
    form = await request.form()
    check_csrf(user, form)
    fund, period = str(form.get("fund") or ""), str(form.get("period") or "")
    if not can_close(user):
        raise forbidden("only an admin or an insurer limited to this fund may close its months")

    def work() -> dict[str, Any]:
        with ctx.db.write() as session:
            return statements.close_period(session, ctx, user.principal, fund, period)

    await run_in_threadpool(work)
    first, last = month_bounds(period)
    query = urlencode({"fund": fund, "from": first, "to": last, "closed": period})
    return RedirectResponse(f"/insurers/statements?{query}", status_code=303)


# -- reconciliation ------------------------------------------------------------------------------


def _upload_page(request: Request, ctx: Any, user: SignedIn, *, values: dict[str, str] | None = None,
                 defects: Defects | None = None, message: Message | None = None, status: int = 200) -> Response:
    """The upload form (with what was wrong with the last one, said in the page's language) and the past runs."""
    gettext = gettext_for(language_of(request, user))
    funds = visible_funds(ctx, user)
    if not funds:
        raise forbidden("this account sees no fund")
    today = ctx.today()
    last_month = _months_back(today, 1)
    values = values or {"fund": funds[0], "from": last_month.isoformat(),
                        "to": month_bounds(month_of(last_month))[1].isoformat()}
    with ctx.db.read() as session:
        runs = reconciliations.list_runs(session, user.principal)
    for r in runs:
        r["difference_fen"] = parse_amount(r["summary"]["difference"])
    shown = [{"line": line, "message": m.render(gettext)} for line, m in defects] if defects is not None else None
    return page(request, "insurers/reconciliations.html", user, status=status, funds=funds,
                names=fund_names(ctx, gettext), values=values, defects=shown,
                message=message.render(gettext) if message is not None else None, runs=runs)


@router.get("/insurers/reconciliations")
def reconciliations_page(request: Request, ctx: Ctx, user: User) -> Response:
    require_role(user, *INSURERS)
    query_filters(request, ())
    return _upload_page(request, ctx, user)


@router.post("/insurers/reconciliations")
async def reconcile(request: Request, ctx: Ctx, user: User) -> Response:
    """Their file against the ledger (reconciliations.service.run, as POST /v1/reconciliations); a bad file
    shows every defect with its line and stores nothing."""
    require_role(user, *INSURERS)
    form = await request.form()
    check_csrf(user, form)
    values = {k: str(form.get(k) or "").strip() for k in ("fund", "from", "to")}
    upload = form.get("file")
    try:
        start, end = _form_day(values["from"], N_("Booked from")), _form_day(values["to"], N_("to"))
        if upload is None or isinstance(upload, str) or not upload.filename:
            raise MessageError(N_("Choose their file (CSV or .xlsx)."))
        data = await upload.read()
        name = upload.filename

        def work() -> dict[str, Any]:
            with ctx.db.write() as session:
                return reconciliations.run(session, ctx, user.principal, values["fund"], start, end, name, data)

        created = await run_in_threadpool(work)
    except MessageError as exc:  # the form's own checks: the form again, saying what is missing
        return _upload_page(request, ctx, user, values=values, message=exc.message, status=400)
    except ServiceError as exc:  # the form again, with what is wrong (a bad file: every defect, its line)
        if isinstance(exc.__cause__, InputDefects):  # reconciliations.service.run's invalid_file
            found = exc.__cause__.found
            said = Message(N_("%(file)s: %(count)s defect(s); nothing was stored"),
                           {"file": exc.__cause__.name, "count": len(found)})
            return _upload_page(request, ctx, user, values=values, defects=found, message=said, status=exc.status)
        fields = {str(e.get("field")) for e in exc.errors or ()}
        said = Message(PERIOD_BACKWARDS if "to" in fields else ERROR_LABELS.get(exc.code, ERROR_OTHER))
        return _upload_page(request, ctx, user, values=values, message=said, status=exc.status)
    return RedirectResponse(f"/insurers/reconciliations/{created['id']}", status_code=303)


PERIOD_BACKWARDS = N_("The period ends (to) before it starts (from).")
"""What the form says for the service's refusal of a period whose end is before its start (field "to")."""


def _form_day(value: str, label: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise MessageError(N_("%(field)s: not a date (YYYY-MM-DD): %(value)s"), field=Message(label),
                           value=repr(value)) from None


@router.get("/insurers/reconciliations/{run_id}")
def run_page(run_id: str, request: Request, ctx: Ctx, user: User) -> Response:
    require_role(user, *INSURERS)
    query_filters(request, ())
    gettext = gettext_for(language_of(request, user))
    with ctx.db.read() as session:
        run = reconciliations.get_run(session, ctx, user.principal, run_id)
        rows = list(reconciliations.items(session, ctx, user.principal, run_id, None))
    by_kind = {k: [r for r in rows if r["kind"] == k] for k in KINDS}
    money = {k: parse_amount(run["summary"][k]) for k in ("ours_total", "theirs_total", "difference")}
    return page(request, "insurers/run.html", user, run=run, by_kind=by_kind, money=money,
                kinds=(*DIFFERENCES, "reversed_ours"), kind_labels=KIND_LABELS, names=fund_names(ctx, gettext),
                downloads=DOWNLOADS)


@router.get("/insurers/reconciliations/{run_id}/items")
def run_download(run_id: str, request: Request, ctx: Ctx, user: User) -> Response:
    """A run's items (all, or of one kind) as the API's GET /v1/reconciliations/{id}/items file."""
    require_role(user, *INSURERS)
    filters = query_filters(request, ("kind", "format"))
    fmt = _download_format(request)
    kind = filters.get("kind")
    with ctx.db.read() as session:
        rows = list(reconciliations.items(session, ctx, user.principal, run_id, kind))
    name = f"reconciliation-{run_id}" + (f"-{kind}" if kind else "")
    return file_response(fmt, ITEM_COLUMNS, rows, name, sheet="对账明细")
