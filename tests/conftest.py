"""Engine fixtures shared by the core tests: the shipped schedules and the worked examples.

Service fixtures live in tests/service/conftest.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from settlement.engine import Tables, compile_tables
from settlement.schedules import ScheduleSet, load_region

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def region_dir() -> Path:
    """The shipped Heilongjiang schedules (2018 and 2019)."""
    return ROOT / "fee_schedules" / "heilongjiang"


@pytest.fixture(scope="session")
def examples_dir() -> Path:
    """The worked examples: claims.jsonl in, expected.jsonl out."""
    return ROOT / "examples"


@pytest.fixture(scope="session")
def schedules(region_dir: Path) -> ScheduleSet:
    return load_region(region_dir)


@pytest.fixture(scope="session")
def tables(schedules: ScheduleSet) -> Tables:
    return compile_tables(schedules)
