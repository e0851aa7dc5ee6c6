"""schedules.cache: a validated read stored and taken again only while everything it depends on is unchanged.

The store must never answer for a folder that differs, by one byte, from the one validated, nor for other
code; a store that is missing, broken or cannot be written costs a validation and nothing else.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from settlement.schedules import ScheduleError, ScheduleSet, cache, load_region, loader
from settlement.schedules.cache import load_region_cached


@pytest.fixture
def region(tmp_path: Path, region_dir: Path) -> Path:
    root = tmp_path / "heilongjiang"
    shutil.copytree(region_dir, root)
    return root


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    where = tmp_path / "cache"
    monkeypatch.setenv("SETTLEMENT_CACHE_DIR", str(where))
    return where


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The folders load_region validated, in order (the cache calls it on every miss)."""
    done: list[Path] = []
    validate = loader.load_region

    def counted(region_dir: Any) -> ScheduleSet:
        done.append(Path(region_dir))
        return validate(region_dir)

    monkeypatch.setattr(loader, "load_region", counted)
    return done


def edit(file: Path, old: str, new: str) -> None:
    text = file.read_text("utf-8")
    assert text.count(old) == 1
    file.write_text(text.replace(old, new), "utf-8")


def test_the_second_read_is_the_stored_one(region: Path, store: Path, validations: list[Path]) -> None:
    first = load_region_cached(region)
    assert validations == [region]
    stored = cache._store_file(region)
    assert stored is not None
    assert list(store.iterdir()) == [stored]
    again = load_region_cached(region)
    assert validations == [region]
    assert again == first == load_region(region)
    assert again.region_dir == str(region)
    assert load_region_cached(str(region)) == first  # the same text, given as str


def test_a_changed_byte_is_validated_again(region: Path, store: Path, validations: list[Path]) -> None:
    before = load_region_cached(region)
    edit(region / "2019" / "schedule.yaml", "annual_cap: 400.00", "annual_cap: 400.01")
    after = load_region_cached(region)
    assert len(validations) == 2
    assert after != before
    assert after == load_region(region)
    edit(region / "2019" / "catalog.csv", "X000002,阿莫西林胶囊 0.25g", "X000002,阿莫西林胶囊 0.5g")
    assert load_region_cached(region).versions[1].catalog["X000002"].name == "阿莫西林胶囊 0.5g"
    assert len(validations) == 3


def test_a_defect_is_reported_as_the_loader_reports_it(region: Path, store: Path) -> None:
    load_region_cached(region)
    edit(region / "2019" / "schedule.yaml", "annual_cap: 400.00", "annual_cap: -400.00")
    with pytest.raises(ScheduleError) as cached:
        load_region_cached(region)
    with pytest.raises(ScheduleError) as validated:
        load_region(region)
    assert cached.value.defects == validated.value.defects
    assert any("annual_cap" in d for d in cached.value.defects)
    with pytest.raises(ScheduleError) as again:  # a defect is never stored
        load_region_cached(region)
    assert again.value.defects == validated.value.defects


def test_a_version_folder_added_or_missing_a_file(region: Path, store: Path, validations: list[Path]) -> None:
    load_region_cached(region)
    shutil.copytree(region / "2019", region / "2020")
    with pytest.raises(ScheduleError, match="two versions with one date"):
        load_region_cached(region)
    shutil.rmtree(region / "2020")
    (region / "2019" / "catalog.csv").unlink()
    with pytest.raises(ScheduleError, match=r"catalog\.csv: missing file"):
        load_region_cached(region)
    with pytest.raises(ScheduleError, match="not a folder"):
        load_region_cached(region / "nowhere")


def test_other_code_is_validated_again(
    region: Path, store: Path, validations: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    load_region_cached(region)
    monkeypatch.setattr(cache, "_CODE", (*cache._CODE, "__init__.py"))  # as if the loader's code had changed
    load_region_cached(region)
    assert len(validations) == 2
    monkeypatch.setattr(cache, "FORMAT", cache.FORMAT + 1)
    load_region_cached(region)
    assert len(validations) == 3


def test_a_broken_store_is_read_again_and_replaced(region: Path, store: Path, validations: list[Path]) -> None:
    expected = load_region_cached(region)
    (file,) = store.iterdir()
    for junk in (b"", b"not a pickle", file.read_bytes()[:100]):
        file.write_bytes(junk)
        assert load_region_cached(region) == expected
    assert len(validations) == 4
    assert load_region_cached(region) == expected
    assert len(validations) == 4


def test_a_store_that_cannot_be_written_costs_a_validation(
    region: Path, tmp_path: Path, validations: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("SETTLEMENT_CACHE_DIR", str(blocked / "cache"))
    assert load_region_cached(region) == load_region(region)
    assert load_region_cached(region) == load_region(region)
    assert len(validations) == 2
    assert blocked.read_text() == "not a folder"


def test_where_the_store_is(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SETTLEMENT_CACHE_DIR", str(tmp_path / "here"))
    assert cache.cache_dir() == tmp_path / "here"
    monkeypatch.delenv("SETTLEMENT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == tmp_path / "xdg" / "settlement"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_dir() == tmp_path / "home" / ".cache" / "settlement"
