"""Engine fixtures shared by the core tests: the shipped schedules and the worked examples.

Service fixtures live in tests/service/conftest.py.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from settlement import jit
from settlement.engine import Tables, compile_tables
from settlement.schedules import ScheduleSet, load_region

ROOT = Path(__file__).resolve().parents[1]

# The commands' store of validated schedule folders (schedules.cache): the tests' own, not the home folder's;
# the commands run in subprocesses inherit it. One per test process, emptied when it ends.
_CACHE = tempfile.TemporaryDirectory(prefix="settlement-test-cache-")
os.environ["SETTLEMENT_CACHE_DIR"] = _CACHE.name


@pytest.fixture(scope="session", autouse=True)
def _compiled_kernels() -> None:
    """Every test runs the compiled kernels, as a large batch does, so that the differential tests
    (scanner against the per-line readers, compiled against source) compare what they say. A few
    claims in a fresh process run the kernels' source instead: tests/engine/test_jit.py."""
    jit.load()


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
