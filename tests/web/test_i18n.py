"""The pages' words come from the catalogs: every message is translated, the catalog holds every message
the sources use, and the templates hold no text outside them. Money and language choice."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from pydantic import ValidationError

from settlement.web import i18n

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "src" / "settlement" / "web" / "templates"


def _catalog(language: str) -> dict[str, str]:
    with (i18n.LOCALE_DIR / language / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalog = read_po(handle)
    out = {}
    for m in catalog:
        if m.id:
            assert "fuzzy" not in m.flags, m.id
            out[str(m.id)] = str(m.string)
    return out


def test_every_message_has_a_chinese_translation() -> None:
    zh = _catalog("zh_CN")
    assert zh and not [k for k, v in zh.items() if not v]
    assert set(_catalog("en")) == set(zh)
    # a translation fills the same placeholders as its message (else rendering it fails on the page)
    placeholders = re.compile(r"%\((\w+)\)s")
    wrong = {k: v for k, v in zh.items() if sorted(placeholders.findall(k)) != sorted(placeholders.findall(v))}
    assert not wrong, wrong


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The message ids Babel extracts from the sources (babel.cfg), as the catalog update does."""
    pot = tmp_path_factory.mktemp("extract") / "messages.pot"
    subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "extract", "-F", "babel.cfg", "-k", "N_", "-o", str(pot),
         "--no-location", "."], cwd=ROOT, check=True, capture_output=True,
    )
    with pot.open("rb") as handle:
        return {str(m.id) for m in read_po(handle) if m.id}


def test_the_catalog_holds_every_message_of_the_sources(extracted: set[str]) -> None:
    assert extracted and extracted <= set(_catalog("zh_CN"))


def test_every_marked_message_is_extracted(extracted: set[str]) -> None:
    """Each N_("…") of the extracted sources is in the extraction (Babel misses one nested in a _() call,
    and then a page says it in English)."""
    import ast
    import configparser

    config = configparser.ConfigParser()
    config.read(ROOT / "babel.cfg")
    marked = set()
    for section in config.sections():
        kind, _, pattern = section.partition(":")
        if kind.strip() != "python":
            continue
        for path in ROOT.glob(pattern.strip().replace("**.py", "**/*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "N_"
                        and node.args and isinstance(node.args[0], ast.Constant)):
                    marked.add(node.args[0].value)
    assert len(marked) > 100 and marked <= extracted, sorted(marked - extracted)
    # and no catalog entry is left that no source uses any longer
    assert set(_catalog("zh_CN")) <= extracted, sorted(set(_catalog("zh_CN")) - extracted)


def test_a_reconciliation_files_defects_are_said_in_chinese() -> None:
    """Every defect of a payer's file: a catalog message, Chinese on a page, the API's English unchanged."""
    from settlement.reconcile import InputDefects, ours_from_results, read_theirs

    zh = _catalog("zh_CN")
    gettext = i18n.translations("zh_CN").gettext
    found = []
    for data, name in ((b"hospital_id,claim_id,amount\nH1,A,1.234\nH1,,5\nH1,C\nH1,\x1bD,1\n"
                        + b"H1," + b"X" * 129 + b",1\n", "a.csv"),
                       (b"claim,amount,amount\n", "a.csv"), (b"", "a.csv"), (b"\xd0\xcf\x11\xe0", "a.xls")):
        try:
            read_theirs(data, name, need_hospital=True)
        except InputDefects as exc:
            assert exc.defects == [f"{name}:{line}: {m}" if line else f"{name}: {m}" for line, m in exc.found]
            found += [m for _, m in exc.found]
    for lines, fund in (([b"[]"], "basic"), ([b'{"claim_id": "A", "payments": {"basic": "1.00"}}'], "nope")):
        try:
            ours_from_results(lines, fund, "r.jsonl")
        except InputDefects as exc:
            found += [m for _, m in exc.found]
    assert len({m.id for m in found}) == 12, sorted({m.id for m in found})  # each kind of defect
    for message in found:
        assert message.id in zh, message.id
        shown = message.render(gettext)
        assert re.search(r"[\u4e00-\u9fff]", shown) and shown != str(message), shown
    assert str(found[0]) == "amount: not an amount in yuan with at most two decimals: '1.234'"
    assert found[0].render(gettext) == "amount（金额）：'1.234' 不是以元为单位、最多两位小数的金额"


def test_templates_hold_no_text_outside_the_catalog() -> None:
    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text()
        text = re.sub(r"{#.*?#}|{%.*?%}|{{.*?}}", " ", text, flags=re.S)  # Jinja: expressions hold _() calls
        text = re.sub(r"<!doctype[^>]*>|<[^>]+>", " ", text, flags=re.S | re.I)  # tags and attributes
        words = re.findall(r"[A-Za-z\u4e00-\u9fff]+", text)
        assert not words, f"{path.name}: text outside the catalog: {words}"


def test_money_and_language_choice() -> None:
    assert i18n.yuan(123456) == "¥1,234.56"
    assert i18n.yuan(-5) == "-¥0.05"
    assert i18n.yuan(0) == "¥0.00"
    assert i18n.negotiate(None) == "zh_CN"
    assert i18n.negotiate("en-US,en;q=0.9") == "en"
    assert i18n.negotiate("fr-FR, en;q=0.5") == "en"
    assert i18n.negotiate("de") == "zh_CN"
    assert i18n.negotiate("zh-Hans-CN,en;q=0.8") == "zh_CN"
    assert i18n.negotiate("en;q=0.3,zh-CN;q=0.9") == "zh_CN"
    assert i18n.translations("zh_CN").gettext("Sign in") == "登录"


def test_backend_messages_shown_on_pages_are_in_the_catalog() -> None:
    """Import problems, error pages and flag figures: what the service says, a page says in Chinese."""
    import inspect

    from settlement.service.errors import TITLES
    from settlement.service.persons.importing import ImportReport, parse
    from settlement.service.reviews import rules
    from settlement.tabular import TableError, read_table
    from settlement.web import labels

    zh = _catalog("zh_CN")
    gettext = i18n.translations("zh_CN").gettext
    # an import with a problem of each kind a row can have: each rendered in Chinese, none left in English
    csv = ("公民身份号码,参保类型,救助对象类别,开始日期,结束日期,颜色\n"
           "110101199003070011,火星居民,特困,2019-13-01,,红\n"
           "110101199003070011,城乡居民,低保,2019-01-01,2018-01-01,\n").encode("gbk")
    report = ImportReport(filename="名册.csv")
    parse(read_table(csv, "名册.csv"), report)
    assert report.problems
    for problem in report.problems:
        assert problem.text is not None and problem.text.id in zh, problem.message
        shown = problem.text.render(gettext)
        assert shown != problem.message and re.search(r"[\u4e00-\u9fff]", shown), shown
        assert str(problem.text) == problem.message  # the API keeps its English text
    for data, name in ((b"", "a.csv"), (b"\xd0\xcf\x11\xe0" + b"\x00" * 10, "a.xls")):
        report = ImportReport(filename=name)
        try:
            parse(read_table(data, name), report)
        except TableError as exc:  # the reader's own messages are catalog ids too
            assert exc.message.id in zh
        else:
            assert report.problems and all(p.text is not None and p.text.id in zh for p in report.problems)
    # the registry's own checks (person id, district, name, periods): Chinese on a page, the API's English
    from settlement.catalog import Message, MessageError
    from settlement.claims.person_id import PersonIdError, check_person_id
    from settlement.service.persons import schemas

    refusals: list[MessageError] = []
    for check, value in ((check_person_id, "1"), (check_person_id, "2301021956031204AX"),
                         (check_person_id, "23010219560312041Y"), (check_person_id, "230102195603120411"),
                         (check_person_id, "230102195602300419"), (schemas.check_district, "2301"),
                         (schemas.check_district, "990102"), (schemas.check_district_prefix, "230"),
                         (schemas.check_name, " "), (schemas.check_name, "长" * 101), (schemas.check_name, "a\u202e")):
        try:
            check(value, dt.date(2019, 1, 1)) if check is check_person_id else check(value)  # type: ignore[operator]
        except MessageError as exc:
            refusals.append(exc)
    try:
        check_person_id("11010120190302001X", dt.date(2019, 1, 1))
    except MessageError as exc:
        refusals.append(exc)
    for model, body in ((schemas.CategoryPeriod, {"category": "none", "valid_from": "2019-01-02",
                                                  "valid_to": "2019-01-01"}),
                        (schemas.PersonIn, {"scheme": "resident", "categories": [
                            {"category": "none", "valid_from": "2019-01-01"},
                            {"category": "low_income", "valid_from": "2019-02-01"}]})):
        try:
            model.model_validate(body)
        except ValidationError as exc:
            refusals.extend(e["ctx"]["error"] for e in exc.errors())
    assert len({r.message.id for r in refusals}) == len(refusals) == 14  # each of the checks' messages
    for refusal in refusals:
        assert refusal.message.id in zh, refusal.message.id
        # a page names the id by its label (the API: person_id)
        said = refusal.with_subject(Message("Person ID")) if isinstance(refusal, PersonIdError) else refusal.message
        shown = said.render(gettext)
        assert shown != str(refusal) and re.search(r"[\u4e00-\u9fff]", shown), shown
        assert not re.search(r"\b(person_id|district|name|valid_to|valid_from)\b", shown), shown
    # every service error code has a page message in the catalog (or the catalog's general one)
    for code in TITLES:
        assert labels.ERROR_LABELS.get(code, labels.ERROR_OTHER) in zh, code
    # every figure and threshold key of the review rules has its words
    source = inspect.getsource(rules.claim_flags) + inspect.getsource(rules.person_flags)
    keys = set(re.findall(r'"([a-z_]+)": ', source))
    keys |= {key for rule in rules.RULES for key in rules.rules_at(None).threshold(rule)}
    missing = sorted(k for k in keys if k not in labels.FIGURE_LABELS)
    assert not missing, missing
    assert all(labels.FIGURE_LABELS[k] in zh for k in keys)
