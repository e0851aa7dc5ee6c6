"""A short `settlement settle` imports what it needs, when it needs it (issue 11: the warm start ≤ 0.3 s).

A fresh process settling one valid claim, with its schedule folder validated by an earlier run, must
not load the compiled kernels (numba), the validating readers (pydantic: the claim model and the
schedule models; YAML), the other commands or the service; its output is the worked example's.
docs/PERFORMANCE.md §7.5 has the figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

NOT_FOR_ONE_CLAIM = (
    "numba",
    "llvmlite",
    "pydantic",
    "pydantic_core",
    "yaml",
    "settlement.claims.models",
    "settlement.schedules.loader",
    "settlement.schedules.models",
    "settlement.insurers_cli",
    "concurrent.futures.process",
    "sqlalchemy",
    "fastapi",
)

_SETTLE = """
import sys
from settlement.cli import main
code = main(["settle", "--schedules", "fee_schedules/heilongjiang", sys.argv[1]])
sys.stdout.flush()
print(" ".join(sorted(sys.modules)), file=sys.stderr)
raise SystemExit(code)
"""


def _settle(claims: Path, cache: Path) -> tuple[list[dict[str, Any]], set[str]]:
    """`settlement settle` of a file in a fresh process (main, as the console script calls it): its results
    and the modules it had loaded at the end."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "SETTLEMENT_CACHE_DIR": str(cache)}
    done = subprocess.run(
        [sys.executable, "-c", _SETTLE, str(claims)], cwd=ROOT, env=env, capture_output=True, timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    results = [json.loads(line) for line in done.stdout.decode().splitlines()]
    return results, set(done.stderr.decode().split())


def test_one_claim_loads_neither_numba_nor_the_validating_readers(tmp_path: Path, examples_dir: Path) -> None:
    one = tmp_path / "one.jsonl"
    one.write_bytes((examples_dir / "claims.jsonl").read_bytes().splitlines(keepends=True)[0])
    expected = json.loads((examples_dir / "expected.jsonl").read_bytes().splitlines()[0])
    cache = tmp_path / "cache"

    first, loaded = _settle(one, cache)  # no store yet: the schedule folder is validated, then stored
    assert first == [expected]
    assert {"settlement.schedules.loader", "pydantic", "yaml"} <= loaded
    assert list(cache.iterdir())

    again, loaded = _settle(one, cache)
    assert again == [expected]
    assert {"numpy", "msgspec", "settlement.batchrun", "settlement.schedules.cache"} <= loaded
    assert sorted(m for m in loaded if m.split(".")[0] in NOT_FOR_ONE_CLAIM or m in NOT_FOR_ONE_CLAIM) == []


def test_a_claim_the_fast_reader_refuses_loads_the_model_for_its_error(tmp_path: Path) -> None:
    """The pydantic model is the contract: it writes every error message, loaded on the first line that needs it."""
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"claim_id": "B-1", "items": []}\n')
    results, loaded = _settle(bad, tmp_path / "cache")
    assert "settlement.claims.models" in loaded
    assert [(r["claim_id"], r["error"]["code"]) for r in results] == [("B-1", "invalid_claim")]
