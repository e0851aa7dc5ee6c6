"""Claims in: JSON text → validated claims, checked and ready for a batch (claims.columns builds it).

Checks run in the order of SPEC §6 — every `invalid_claim` check first, then
the person id, the schedule, the catalog — so a claim with several defects
always reports the same one. The engine adds `no_standard` last.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from settlement.engine.tables import Tables

from .checks import catalog_index
from .person_id import PersonIdError, age_on, check_person_id, normalize_person_id
from .record import ClaimRecord

if TYPE_CHECKING:
    from pydantic import ValidationError

    from .models import Claim

INVALID_CLAIM = "invalid_claim"
INVALID_PERSON_ID = "invalid_person_id"
UNKNOWN_ITEM = "unknown_item"
NO_SCHEDULE = "no_schedule"
NO_STANDARD = "no_standard"
ERROR_ORDER = (INVALID_CLAIM, INVALID_PERSON_ID, NO_SCHEDULE, UNKNOWN_ITEM, NO_STANDARD)

# A float with more than 4 decimals or an exponent cannot be read exactly
# through a binary float; such lines take the exact (slower) decoder.
_INEXACT_NUMBER = re.compile(rb"[0-9]\.[0-9]{5}|[0-9][eE]")


@dataclass(frozen=True)
class ClaimError(Exception):
    code: str
    message: str
    claim_id: str | None = None
    fields: tuple[dict[str, str], ...] = ()
    """For invalid_claim: each field error as {"field": "items[3].unit_price", "message": …}."""

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class DuplicateKeyError(ValueError):
    """A JSON object names a key twice (JSON parsers keep one of them: which is not the writer's call)."""

    def __init__(self, path: str) -> None:
        super().__init__(f"{path}: duplicate key")
        self.path = path


def decode_json(text: bytes | str) -> Any:
    """JSON text → Python values, numbers exact (see _INEXACT_NUMBER); DuplicateKeyError for a key named
    twice in one object."""
    raw = text.encode() if isinstance(text, str) else text
    raw = raw.removeprefix(b"\xef\xbb\xbf")  # a file's byte-order mark, as the fast path reads it
    if not _INEXACT_NUMBER.search(raw):
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # the exact decoder below gives the error (or takes big integers)
        else:
            _refuse_duplicate_keys(raw, obj)
            return obj
    try:
        # as json.loads(bytes) decodes, but strictly: an encoded lone surrogate is a ValueError
        obj = json.loads(raw.decode(json.detect_encoding(raw)), parse_float=Decimal)
    except RecursionError:
        # arrays nested thousands deep: not a claim, and must not end the run
        raise ValueError("JSON nested too deeply") from None
    _refuse_lone_surrogates(obj)
    _refuse_duplicate_keys(raw, obj)
    return obj


def _refuse_duplicate_keys(raw: bytes, obj: Any) -> None:
    """DuplicateKeyError when an object of the text names a key twice.

    Every member of an object is written with one ``:`` outside strings, and a
    ``:`` inside a string is written as it is unless escaped. So without a
    backslash in the text, its colons are the parsed objects' members plus the
    colons of the parsed strings, unless a duplicate was dropped (one parser
    pass, then a walk of the values: no second parse on the counter's path).
    """
    if b"\\" in raw:
        _exact_duplicates(raw)
        return
    members = 0
    colons = 0
    stack = [obj]
    while stack:
        value = stack.pop()
        if value.__class__ is dict:
            members += len(value)
            for key, item in value.items():
                if ":" in key:
                    colons += key.count(":")
                if item.__class__ is str:
                    if ":" in item:
                        colons += item.count(":")
                elif item.__class__ is dict or item.__class__ is list:
                    stack.append(item)
        elif value.__class__ is list:
            for item in value:
                if item.__class__ is str:
                    colons += item.count(":")
                elif item.__class__ is dict or item.__class__ is list:
                    stack.append(item)
    if raw.count(b":") != members + colons:
        _exact_duplicates(raw)


def _exact_duplicates(raw: bytes) -> None:
    """The slow, exact check (a hook per object): raises naming the first duplicate key's path."""

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                raise DuplicateKeyError(key)
            seen[key] = value
        return seen

    try:
        json.loads(raw.decode(json.detect_encoding(raw)), object_pairs_hook=hook)
    except DuplicateKeyError as exc:
        raise DuplicateKeyError(_duplicate_path(raw, exc.path)) from None


def _duplicate_path(raw: bytes, key: str) -> str:
    """Where the duplicate is, as field errors name it (``patient.person_id``, ``items[2].code``)."""

    def find(value: Any, at: str) -> str | None:
        if isinstance(value, list):
            return next((p for i, v in enumerate(value) if (p := find(v, f"{at}[{i}]")) is not None), None)
        if isinstance(value, _Pairs):
            keys = [k for k, _ in value.pairs]
            if keys.count(key) > 1:
                return f"{at}.{key}" if at else key
            return next((p for k, v in value.pairs if (p := find(v, f"{at}.{k}" if at else k)) is not None), None)
        return None

    tree = json.loads(raw.decode(json.detect_encoding(raw)), object_pairs_hook=_Pairs)
    return find(tree, "") or key


class _Pairs:
    """An object's members as written (duplicates kept), for _duplicate_path."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        self.pairs = pairs


def _refuse_lone_surrogates(obj: Any) -> None:
    """A `\\ud800` escape without its pair decodes to a string no UTF-8 JSON can carry (nor orjson write back):
    the text is taken as not valid JSON, as orjson takes it, rather than failing later."""
    stack = [obj]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            texts: Any = (value,)
        elif isinstance(value, dict):
            texts = value.keys()
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
            continue
        else:
            continue
        for text in texts:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("JSON holds a lone surrogate") from None


def _field_path(loc: tuple[int | str, ...]) -> str:
    from .models import PATIENT_TAG

    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.startswith(("function-", "literal[", "nullable[", "int", "str", "lax-", "strict-", PATIENT_TAG)):
            continue
        else:
            path += f".{part}" if path else part
    return path or "(claim)"


def _message(item: Any) -> str:
    kind = item["type"]
    if kind == "missing":
        return "missing"
    if kind == "extra_forbidden":
        return "unknown key"
    return str(item["msg"]).removeprefix("Value error, ")


def claim_id_of(obj: Any) -> str | None:
    value = obj.get("claim_id") if isinstance(obj, dict) else None
    return value if isinstance(value, str) else None


@functools.cache
def _model() -> tuple[type[Claim], type[ValidationError]]:
    """The pydantic claim model and its error, imported on the first claim that needs them: the batch
    CLI's readers (`fast`, `columnar`) take the common claim without them (docs/PERFORMANCE.md §7.5)."""
    from pydantic import ValidationError

    from .models import Claim

    return Claim, ValidationError


def validate_claim(obj: Any) -> Claim:
    # A missing scheme is checked in prepare_claim, once the registry (service)
    # or the claim itself (CLI) has had the chance to give one.
    """Raises ClaimError(invalid_claim) listing every field error, in document order."""
    if not isinstance(obj, dict):
        raise ClaimError(INVALID_CLAIM, "a claim must be a JSON object", None)
    claim_model, validation_error = _model()
    try:
        claim = claim_model.model_validate(obj)
    except validation_error as exc:
        errors = []
        seen = set()
        for item in exc.errors():
            entry = {"field": _field_path(item["loc"]), "message": _message(item)}
            key = (entry["field"], entry["message"])
            if key not in seen:
                seen.add(key)
                errors.append(entry)
        # a check across keys (Claim._unidentified_patient) names its keys itself
        message = "; ".join(
            e["message"] if e["field"] == "(claim)" else f"{e['field']}: {e['message']}" for e in errors
        )
        raise ClaimError(INVALID_CLAIM, message, claim_id_of(obj), tuple(errors)) from None
    return claim


@dataclass
class PreparedClaim:
    """A claim that passed every check before the engine: ready for a batch."""

    record: ClaimRecord
    person_id: str
    """"" for an unidentified patient, as scheme and category; age -1."""
    version: int
    age: int
    items: list[int]
    """Global catalog rows of the claim's lines."""
    scheme: str
    category: str
    level: int
    """The hospital's level the claim is settled at (the claim's, or the counter's registry's)."""

    @property
    def unidentified(self) -> bool:
        return self.record.unidentified


def prepare_claim(
    claim: Claim | ClaimRecord,
    tables: Tables,
    scheme: str | None = None,
    category: str | None = None,
    level: int | None = None,
) -> PreparedClaim:
    """Person id, schedule and catalog checks (SPEC §6 order). Scheme/category/level override the claim's
    (the counter passes the registries' values).

    An unidentified patient has no person id to check, nor a scheme, category or age: those stay empty
    ("", "", -1) and the batch marks the claim unidentified.
    """
    record = claim if isinstance(claim, ClaimRecord) else ClaimRecord.from_model(claim)
    if level is not None:
        record.level = level
    if record.level is None:  # required in a batch (SPEC §3); the counter always passes the registry's
        raise ClaimError(
            INVALID_CLAIM, "hospital.level: missing", record.claim_id,
            ({"field": "hospital.level", "message": "missing"},),
        )
    unidentified = record.unidentified
    age = -1
    if not unidentified:
        scheme = scheme or record.scheme
        if scheme is None:  # an invalid_claim, so it comes before the person id (§6)
            raise ClaimError(
                INVALID_CLAIM, "patient.scheme: missing", record.claim_id,
                ({"field": "patient.scheme", "message": "missing"},),
            )
        try:
            birth = check_person_id(record.person_id, record.admitted)
        except PersonIdError as exc:
            raise ClaimError(INVALID_PERSON_ID, str(exc), record.claim_id) from None
        age = age_on(birth, record.admitted)
    schedules = tables.schedules
    version = schedules.index_for(record.discharged)
    if version < 0:
        raise ClaimError(
            NO_SCHEDULE,
            # the region folder's name, not its path: the message reaches API clients (no server paths)
            f"no fee schedule of {Path(schedules.region_dir).name} is in force on the discharge date"
            f" {record.discharged}",
            record.claim_id,
        )
    items = catalog_index(tables).rows_of(record.codes, version)
    if -1 in items:
        unknown = list(dict.fromkeys(code for code, row in zip(record.codes, items, strict=True) if row < 0))
        raise ClaimError(UNKNOWN_ITEM, f"unknown item codes: {', '.join(unknown)}", record.claim_id)
    if unidentified:
        return PreparedClaim(record=record, person_id="", version=version, age=-1, items=items, scheme="",
                             category="", level=record.level)
    assert scheme is not None
    return PreparedClaim(
        record=record,
        person_id=normalize_person_id(record.person_id),
        version=version,
        age=age,
        items=items,
        scheme=scheme,
        category=category or record.category or "none",
        level=record.level,
    )
