"""The pages' words come from the catalogs: every message is translated, the catalog holds every message
the sources use, and the templates hold no text outside them. Money and language choice."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po

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


def test_the_catalog_holds_every_message_of_the_sources(tmp_path: Path) -> None:
    pot = tmp_path / "messages.pot"
    subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "extract", "-F", "babel.cfg", "-k", "N_", "-o", str(pot),
         "--no-location", "."], cwd=ROOT, check=True, capture_output=True,
    )
    with pot.open("rb") as handle:
        extracted = {str(m.id) for m in read_po(handle) if m.id}
    assert extracted and extracted <= set(_catalog("zh_CN"))


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
