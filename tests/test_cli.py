"""SPEC §7: `settlement settle` and `settlement schedules validate`, their input and exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from settlement import cli

TIMEOUT = 120


def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    """The command as a user runs it: the installed console script when there is one."""
    script = Path(sys.executable).parent / "settlement"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "settlement.cli"]
    return subprocess.run([*command, *args], input=stdin, capture_output=True, timeout=TIMEOUT, check=False)


@pytest.fixture(scope="module")
def claims_file(examples_dir: Path) -> Path:
    return examples_dir / "claims.jsonl"


def _lines(data: bytes) -> list[dict[str, object]]:
    assert data.endswith(b"\n")
    return [json.loads(line) for line in data.decode().split("\n")[:-1]]


def test_file_stdin_and_dash_give_the_same_output(region_dir: Path, claims_file: Path) -> None:
    from_file = run("settle", "--schedules", str(region_dir), str(claims_file))
    from_stdin = run("settle", "--schedules", str(region_dir), stdin=claims_file.read_bytes())
    from_dash = run("settle", "--schedules", str(region_dir), "-", stdin=claims_file.read_bytes())
    for proc in (from_file, from_stdin, from_dash):
        assert proc.returncode == 0, proc.stderr.decode()
        assert proc.stderr == b""
    assert from_file.stdout == from_stdin.stdout == from_dash.stdout
    assert len(_lines(from_file.stdout)) == 20


def test_stdin_redirected_from_a_file(region_dir: Path, claims_file: Path) -> None:
    """A regular file on stdin (`settle < FILE`) is read through stdin, not by a name it does not have."""
    script = Path(sys.executable).parent / "settlement"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "settlement.cli"]
    with claims_file.open("rb") as source:
        proc = subprocess.run([*command, "settle", "--schedules", str(region_dir)], stdin=source,
                              capture_output=True, timeout=TIMEOUT, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout == run("settle", "--schedules", str(region_dir), str(claims_file)).stdout
    assert len(_lines(proc.stdout)) == 20


def test_errors_do_not_stop_the_run(region_dir: Path, claims_file: Path) -> None:
    good = claims_file.read_bytes().splitlines()
    data = b"\n".join([b"garbage", good[0], b"", b"[]", b"  ", good[1], b'{"claim_id": "Z"}']) + b"\n"
    proc = run("settle", "--schedules", str(region_dir), stdin=data)
    assert proc.returncode == 0
    out = _lines(proc.stdout)
    assert [r["claim_id"] for r in out] == [None, "EX-01", None, "EX-02", "Z"]
    assert [("error" in r) for r in out] == [True, False, True, False, True]


def test_empty_input(region_dir: Path) -> None:
    proc = run("settle", "--schedules", str(region_dir), stdin=b"\n\n  \n")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")


def test_bad_schedule_folder_exits_2_with_defects_on_stderr(
    tmp_path: Path, region_dir: Path, claims_file: Path
) -> None:
    proc = run("settle", "--schedules", str(tmp_path / "missing"), str(claims_file))
    assert proc.returncode == 2
    assert proc.stdout == b""
    assert b"not a folder" in proc.stderr
    broken = tmp_path / "region"
    shutil.copytree(region_dir, broken)
    yaml_file = broken / "2019" / "schedule.yaml"
    yaml_file.write_text(
        yaml_file.read_text("utf-8").replace("max_personal_share: 0.10", "max_personal_share: 10"), "utf-8"
    )
    proc = run("settle", "--schedules", str(broken), stdin=claims_file.read_bytes())
    assert proc.returncode == 2 and proc.stdout == b""
    assert f"{yaml_file}: backstop.max_personal_share: rate outside 0–1".encode() in proc.stderr


def test_validate_exit_codes(tmp_path: Path, region_dir: Path) -> None:
    ok = run("schedules", "validate", str(region_dir))
    assert ok.returncode == 0
    rows = ok.stdout.decode().splitlines()
    assert [row.split("\t")[0] for row in rows] == ["heilongjiang-2018", "heilongjiang-2019"]
    bad = run("schedules", "validate", str(tmp_path))
    assert bad.returncode == 1
    assert b"no version folders" in bad.stdout


def test_missing_file_is_a_failure(region_dir: Path, tmp_path: Path) -> None:
    proc = run("settle", "--schedules", str(region_dir), str(tmp_path / "nope.jsonl"))
    assert proc.returncode != 0
    assert proc.stdout == b""


def test_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["settle"])  # --schedules is required
    assert info.value.code == 2
    assert "--schedules" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        cli.main(["no-such-command"])
    assert info.value.code == 2


def test_main_reads_stdin(
    region_dir: Path, claims_file: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    class Stdin:
        buffer = claims_file.open("rb")

    monkeypatch.setattr(sys, "stdin", Stdin)
    try:
        assert cli.main(["settle", "--schedules", str(region_dir)]) == 0
    finally:
        Stdin.buffer.close()
    out, err = capsysbinary.readouterr()
    assert err == b"" and len(_lines(out)) == 20


def test_bundled_schedules_are_the_shipped_ones(region_dir: Path) -> None:
    assert cli.BUNDLED_SCHEDULES.resolve() == region_dir.resolve()
