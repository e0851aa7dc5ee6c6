"""The registry's pages: search, a person (periods as a timeline, the year against the caps, settlements,
the history of every change), and the import with its dry run (persons.service, persons.importing)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from settlement.catalog import N_, Message, MessageError
from settlement.claims.person_id import PersonIdError, check_person_id, normalize_person_id
from settlement.service.db import run_transaction
from settlement.service.deps import Ctx
from settlement.service.errors import ServiceError, invalid_request, not_found
from settlement.service.persons import service as persons
from settlement.service.persons.importing import ImportRejected, import_check, import_commit
from settlement.service.persons.position import year_position
from settlement.service.persons.schemas import OVERLAP, PersonIn, check_district_prefix
from settlement.service.settlements import query
from settlement.service.settlements import service as settlements
from settlement.service.settlements.visibility import funds_view

from . import charts
from .labels import CATEGORY_LABELS, ERROR_LABELS, ERROR_OTHER, LAYER_LABELS, VISIT_LABELS
from .render import gettext_for, language_of, page
from .routes_review import REVIEWERS, STAFF, _queue_row, query_filters
from .session import User, check_csrf, require_role

router = APIRouter(include_in_schema=False)
IMPORT_MAX_BYTES = 1_500_000
"""An import file's size limit (the request body's is 2 MiB, and a commit sends the file again)."""


PROBLEM_PLACES = {"(row)": N_("the whole row"), "(file)": N_("the whole file"), "(header)": N_("the header row")}
"""Where an import problem is when no column names it (importing.Problem.field)."""


@router.get("/review/persons")
def persons_page(request: Request, ctx: Ctx, user: User) -> Response:
    require_role(user, *STAFF)
    filters = query_filters(request, ("q", "district", "category", "cursor"))
    found: dict[str, Any] = {"items": [], "next_cursor": None}
    searched = any(k in filters for k in ("q", "district", "category"))
    problem = None
    if "district" in filters:  # a clerk's typo: said on the search form, in the page's language
        try:
            check_district_prefix(filters["district"])
        except MessageError as exc:
            problem, searched = exc.message.render(gettext_for(language_of(request, user))), False
    if searched:
        if "category" in filters and filters["category"] not in CATEGORY_LABELS:
            raise invalid_request(f"category: one of {', '.join(CATEGORY_LABELS)}")
        with ctx.db.read() as session:
            found = persons.search(session, user.principal, q=filters.get("q"), district=filters.get("district"),
                                   category=filters.get("category"), on=ctx.today(), cursor=filters.get("cursor"),
                                   limit=50)
    return page(request, "persons.html", user, filters=filters, items=found["items"],
                next_cursor=found["next_cursor"], searched=searched, can_import=user.role in REVIEWERS,
                problem=problem, status=422 if problem else 200)


@router.get("/review/persons/import")
def import_form(request: Request, user: User) -> Response:
    require_role(user, *REVIEWERS)
    return page(request, "import.html", user, report=None)


@router.post("/review/persons/import")
async def import_file(request: Request, ctx: Ctx, user: User) -> Response:
    """Step 1 (a file uploaded): the dry run, every row's problem, nothing written. Step 2 (commit=1, the
    same file carried back by the form): everything written with its history, or nothing."""
    require_role(user, *REVIEWERS)
    form = await request.form()
    check_csrf(user, form)
    _ = gettext_for(language_of(request, user))
    upload = form.get("file")
    if upload is not None and not isinstance(upload, str):
        data, filename = await upload.read(), upload.filename
    else:
        try:
            data = base64.b64decode(str(form.get("content") or ""), validate=True)
        except binascii.Error:
            raise invalid_request("content: not the file this page sent") from None
        filename = str(form.get("filename") or "") or None
    if not data:
        return page(request, "import.html", user, report=None, message=_("Choose a CSV or Excel file."))
    if len(data) > IMPORT_MAX_BYTES:
        return page(request, "import.html", user, report=None,
                    message=_("The file is larger than 1.5 MB: split it into several files."))
    principal = user.principal
    if form.get("commit") == "1":
        try:
            report = run_transaction(ctx.db.write, lambda s: import_commit(s, ctx, principal, data, filename))
        except ImportRejected as rejected:  # the registry changed since the dry run
            report = rejected.report
    else:
        with ctx.db.read() as session:
            report = import_check(session, ctx, principal, data, filename)
    plain = gettext_for(language_of(request, user))  # not the templates' _: it formats with no values
    return page(request, "import.html", user, report=report, filename=filename,
                problem_text=lambda p: p.text.render(plain) if p.text is not None else p.message,
                problem_place=lambda p: p.column or plain(PROBLEM_PLACES.get(p.field, p.field)),
                content=base64.b64encode(data).decode() if report.ok and not report.committed else "")


EDIT_ROWS = 3
"""Blank period rows the edit form offers beyond the person's own."""

FIELD_LABELS = {"person_id": N_("Person ID"), "scheme": N_("Scheme"), "name": N_("Name"), "district": N_("District"),
                "categories": N_("Category periods"), "category": N_("Category"), "valid_from": N_("From"),
                "valid_to": N_("To")}
"""The form's fields as its labels say them (an error names the field it is about)."""

INPUT_PROBLEMS = {
    "missing": N_("is required"),
    "enum": N_("is not one of the choices"),
    "literal_error": N_("is not one of the choices"),
    "date_format": N_("is not a date (write 2018-01-01)"),
    "too_short": N_("needs at least one period"),
    "too_long": N_("has too many periods"),
}
INPUT_PROBLEM_OTHER = N_("is not valid")
"""What the form says for pydantic's own checks, by error type (the registry's own checks say why
themselves: catalog.MessageError)."""


def form_problems(exc: ValidationError) -> list[Message]:
    """The form's problems as catalog messages: the field (a period by its row on the form), then what
    is wrong with it."""
    out = []
    for error in exc.errors():
        loc = [x for x in error["loc"] if x != "categories" or len(error["loc"]) == 1]
        raised = (error.get("ctx") or {}).get("error")
        if isinstance(raised, MessageError):
            problem = raised.message
            if problem.id == OVERLAP:  # the API counts periods from 0, the form's rows from 1
                problem = Message(OVERLAP, {k: int(v) + 1 for k, v in problem.values.items()})
        else:
            problem = Message(INPUT_PROBLEMS.get(error["type"], INPUT_PROBLEM_OTHER))
        out.append(_at(loc, problem, whole=isinstance(raised, MessageError)))
    return out


def _at(loc: list[Any], problem: Message, *, whole: bool) -> Message:
    """A problem at a field: ``whole`` messages name their field themselves (the registry's checks)."""
    row = next((x for x in loc if isinstance(x, int)), None)
    name = next((str(x) for x in reversed(loc) if isinstance(x, str)), None)
    if not whole and name is not None:
        problem = Message(N_("%(field)s %(problem)s"), {"field": Message(FIELD_LABELS.get(name, name)),
                                                        "problem": problem})
    if row is not None:
        return Message(N_("Period %(row)s: %(problem)s"), {"row": row + 1, "problem": problem})
    return problem


def _service_problems(exc: ServiceError) -> list[Message]:
    """A refusal of the registry (persons.service.put_person) in the page's words, with the periods it names."""
    said = Message(ERROR_LABELS.get(exc.code, ERROR_OTHER))
    rows = [int(part) for e in exc.errors or () for part in str(e.get("field", "")).split(".")
            if part.isdigit()]
    return [_at([row], said, whole=True) for row in rows] or [said]


@router.get("/review/persons/new")
def new_form(request: Request, user: User) -> Response:
    """Registers a person the registry does not hold yet (the edit form, with the person id)."""
    require_role(user, *REVIEWERS)
    return _edit_page(request, user, None, {"person_id": "", "scheme": "resident", "name": "", "district": "",
                                            "periods": []}, [])


@router.post("/review/persons/new")
async def new(request: Request, ctx: Ctx, user: User) -> Response:
    """Registers a person (persons.service.put_person), or the form again with what is wrong; a person id
    already in the registry is refused (edit that person instead), decided by the insert under the
    person row's primary key, so two clerks registering the same id at once cannot both succeed."""
    require_role(user, *REVIEWERS)
    form = await request.form()
    check_csrf(user, form)
    values = _form_values(form)
    values["person_id"] = normalize_person_id(str(form.get("person_id") or "").strip())
    return _save(request, ctx, user, values["person_id"], values, create=True)


def _form_values(form: Any) -> dict[str, Any]:
    text = {k: str(v).strip() for k, v in form.multi_items() if isinstance(v, str)}
    rows = zip(form.getlist("category"), form.getlist("valid_from"), form.getlist("valid_to"), strict=False)
    periods = [{"category": str(c).strip(), "valid_from": str(f).strip(), "valid_to": str(t).strip()}
               for c, f, t in rows if str(c).strip() or str(f).strip() or str(t).strip()]
    return {"scheme": text.get("scheme", ""), "name": text.get("name", ""), "district": text.get("district", ""),
            "periods": periods}


class _Registered(Exception):
    """The person id of a new registration is in the registry already (rolls the transaction back)."""


def _refused_id(person_id: str) -> Message | None:
    """What is wrong with the person id, naming it by the form's label; None when it is valid."""
    try:
        check_person_id(person_id, dt.date.max)
    except PersonIdError as exc:
        return exc.with_subject(Message(FIELD_LABELS["person_id"]))
    return None


def _save(request: Request, ctx: Any, user: Any, person_id: str, values: dict[str, Any], *, create: bool) -> Response:
    """Validates the form as the API's body (PersonIn) and replaces the person's entry (create: registers
    a new one; else edits a registered one, 404 if there is none); the form again, in the page's language,
    with every problem, when it is refused (nothing written)."""
    shown = None if create else person_id
    wrong_id = _refused_id(person_id)
    if wrong_id is not None:
        return _edit_page(request, user, shown, values, [wrong_id], status=422)
    try:
        data = PersonIn.model_validate({
            "scheme": values["scheme"], "name": values["name"] or None, "district": values["district"] or None,
            "categories": [{"category": p["category"], "valid_from": p["valid_from"], "valid_to": p["valid_to"] or None}
                           for p in values["periods"]],
        })

        def write(session: Any) -> None:
            _person, created = persons.put_person(session, user.principal, person_id, data, ctx.now())
            if create and not created:
                raise _Registered
            if created and not create:  # an edit of nobody: registering is the registration form's
                raise not_found(f"person {person_id} is not in the registry")

        run_transaction(ctx.db.write, write)
    except ValidationError as exc:
        return _edit_page(request, user, shown, values, form_problems(exc), status=422)
    except _Registered:
        return _edit_page(request, user, shown, values, [Message(
            N_("%(id)s is in the registry already: edit that person instead"), {"id": person_id})], status=409)
    except ServiceError as exc:
        if exc.status == 404:
            raise
        return _edit_page(request, user, shown, values, _service_problems(exc), status=exc.status)
    return RedirectResponse(f"/review/persons/{person_id}", status_code=303)


@router.get("/review/persons/{person_id}/edit")
def edit_form(person_id: str, request: Request, ctx: Ctx, user: User) -> Response:
    require_role(user, *REVIEWERS)
    with ctx.db.read() as session:
        person = persons.visible_person(session, user.principal, person_id)
        values = {"scheme": person.scheme, "name": person.name or "", "district": person.district or "",
                  "periods": [{"category": p.category, "valid_from": p.valid_from.isoformat(),
                               "valid_to": p.valid_to.isoformat() if p.valid_to else ""} for p in person.periods]}
    return _edit_page(request, user, person.person_id, values, [])


def _edit_page(request: Request, user: Any, person_id: str | None, values: dict[str, Any], errors: list[Message],
               status: int = 200) -> Response:
    """The edit form (person_id None: the registration of a new person, with its id field)."""
    periods = values["periods"] + [{"category": "", "valid_from": "", "valid_to": ""}] * EDIT_ROWS
    plain = gettext_for(language_of(request, user))  # not the templates' _: it formats with no values
    return page(request, "person_edit.html", user, status=status, person_id=person_id, values=values,
                periods=periods, errors=[e.render(plain) for e in errors])


@router.post("/review/persons/{person_id}/edit")
async def edit(person_id: str, request: Request, ctx: Ctx, user: User) -> Response:
    """Replaces the person's entry (persons.service.put_person: validated, with its history record)."""
    require_role(user, *REVIEWERS)
    form = await request.form()
    check_csrf(user, form)
    return _save(request, ctx, user, person_id, _form_values(form), create=False)


@router.get("/review/persons/{person_id}")
def person_page(person_id: str, request: Request, ctx: Ctx, user: User) -> Response:
    require_role(user, *STAFF)
    _ = gettext_for(language_of(request, user))
    filters = query_filters(request, ("year",))
    principal = user.principal
    with ctx.db.read() as session:
        person = persons.visible_person(session, principal, person_id)
        pid = person.person_id
        rows, _cursor = query.page(session, ctx, principal, query.SettlementFilter(person_id=pid),
                                   sort="-settled_at", limit=200)
        years = sorted({r.policy_year for r in rows})
        if filters.get("year", "").isdigit():
            year = int(filters["year"])
        else:  # the latest year the person was settled in, else this year
            year = years[-1] if years else dt.datetime.now(ctx.tz).year
        position = year_position(session, ctx, pid, year, principal)
        history = persons.history(session, principal, pid) if user.role in REVIEWERS else None
        statuses, _flags = query.review_facts(session, [r.seq for r in rows])
    # a fund-limited insurer sees its funds' amounts only (visibility.funds_view): the others are blank
    items = [{**_queue_row(funds_view(settlements.summary_of(r), principal.funds)), "review_status": statuses[r.seq]}
             for r in rows]
    periods = [{"category": p.category, "valid_from": p.valid_from, "valid_to": p.valid_to} for p in person.periods]
    cap_rows = [r for r in position.rows if r.applies]
    caps_chart = charts.cap_bars(
        [(_position_label(r, _), r.paid, 0, r.remaining or 0) for r in cap_rows if r.cap is not None], _,
        labels=(_("Paid this year"), "", _("Room left")), width=520) if any(r.cap for r in cap_rows) else ""
    timeline = charts.timeline(
        [(_(CATEGORY_LABELS.get(p.category) or p.category), p.valid_from, p.valid_to) for p in person.periods],
        dt.datetime.now(ctx.tz).date(), _) if periods else ""
    return page(request, "person.html", user, person=person, periods=periods, year=year, years=years,
                position=position, cap_rows=cap_rows, caps_chart=caps_chart, timeline=timeline, rows=items,
                history=history, position_label=lambda r: _position_label(r, _),
                sees_names=user.role in REVIEWERS, can_edit=user.role in REVIEWERS)


def _position_label(row: Any, _: Any) -> str:
    if row.layer == "basic":
        return f"{_(LAYER_LABELS['basic'])} · {_(VISIT_LABELS.get(row.visit_type, row.visit_type))}"
    if row.layer == "charity":
        return str(row.fund_name or row.fund)
    return str(_(LAYER_LABELS.get(row.layer, row.layer)))
