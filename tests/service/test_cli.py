"""`settlement keys create`, `settlement persons import`, `settlement serve --demo` (a real server)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from service_helpers import EXAMPLES, ROOT, example

KEY = re.compile(r"stl_[0-9a-f]{12}_[A-Za-z0-9_-]{43}")


def cli(args: list[str], monkeypatch: Any, capsys: Any, db: Path) -> tuple[int, str, str]:
    """Runs `settlement …` in-process (SETTLEMENT_DATABASE_URL set to a SQLite file); (status, out, err)."""
    from settlement.cli import main

    monkeypatch.setenv("SETTLEMENT_DATABASE_URL", f"sqlite:///{db}")
    try:
        status = main(args)
    except SystemExit as exc:  # argparse
        status = int(exc.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


def test_keys_create_prints_the_key_alone(tmp_path: Path, monkeypatch: Any, capsys: Any) -> None:
    db = tmp_path / "cli.db"
    status, out, err = cli(["keys", "create", "--role", "hospital", "--hospital", "H0002", "--label", "billing"],
                           monkeypatch, capsys, db)
    assert status == 0, err
    assert KEY.fullmatch(out.strip()) and out.count("\n") == 1
    key = out.strip()
    status, out, _ = cli(["keys", "list"], monkeypatch, capsys, db)
    assert status == 0 and "hospital\tH0002\tbilling" in out
    assert key not in out and key.split("_", 2)[2] not in db.read_bytes().decode("latin-1")  # stored hashed
    # the key works against the API on the same database
    from fastapi.testclient import TestClient

    from settlement.service.app import create_app
    from settlement.service.config import Settings

    app = create_app(Settings(database_url=f"sqlite:///{db}"))
    client = TestClient(app)
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/v1/schedules", headers=headers).status_code == 200
    assert client.get("/v1/persons/23010219560312041X", headers=headers).status_code == 403
    assert cli(["keys", "revoke", key.split("_")[1]], monkeypatch, capsys, db)[0] == 0
    assert client.get("/v1/schedules", headers=headers).status_code == 401
    assert cli(["keys", "revoke", "000000000000"], monkeypatch, capsys, db)[0] == 1
    app.state.ctx.db.dispose()
    # wrong uses: nothing on stdout, exit 2
    for args in (["--role", "hospital"], ["--role", "admin", "--hospital", "H1"], ["--role", "reviewer", "--fund", "x"],
                 ["--role", "boss"]):
        status, out, err = cli(["keys", "create", *args], monkeypatch, capsys, db)
        assert status == 2 and out == "" and err


def test_persons_import_and_db_upgrade(tmp_path: Path, monkeypatch: Any, capsys: Any) -> None:
    db = tmp_path / "cli.db"
    assert "revision 0014" in cli(["db", "upgrade"], monkeypatch, capsys, db)[1]
    good = tmp_path / "persons.csv"
    good.write_text(
        "person_id,scheme,category,valid_from,valid_to\n23010219560312041x,resident,registered_poor,2018-01-01,\n"
    )
    status, out, _ = cli(["persons", "import", str(good)], monkeypatch, capsys, db)
    assert status == 0 and "imported 1 rows, 1 persons (1 new" in out
    bad = tmp_path / "bad.csv"
    bad.write_text("person_id,scheme,category,valid_from,valid_to\n123,resident,registered_poor,2018-01-01,\n")
    status, _, err = cli(["persons", "import", str(bad)], monkeypatch, capsys, db)
    assert status == 1 and f"{bad}:2: person_id" in err


def test_engine_commands_still_work(tmp_path: Path, monkeypatch: Any, capsys: Any) -> None:
    db = tmp_path / "cli.db"
    region = str(ROOT / "fee_schedules" / "heilongjiang")
    status, out, _ = cli(["schedules", "validate", region], monkeypatch, capsys, db)
    assert status == 0 and "heilongjiang-2018" in out
    args = ["settle", "--schedules", str(ROOT / "fee_schedules" / "heilongjiang"), str(EXAMPLES / "claims.jsonl")]
    status, out, _ = cli(args, monkeypatch, capsys, db)
    assert status == 0 and out.count("\n") == 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_demo_settles_a_worked_example(tmp_path: Path) -> None:
    env = {**os.environ, "SETTLEMENT_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}", "PYTHONUNBUFFERED": "1"}
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "settlement.cli", "serve", "--demo", "--port", str(port), "--log-level", "warning"],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        keys: dict[str, str] = {}
        assert proc.stdout is not None
        while len(keys) < 6:
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else "serve ended"
            if line.startswith("export "):
                name, _, key = line[len("export "):].strip().partition("=")
                keys[name] = key
        assert set(keys) == {"HOSPITAL_H0002_KEY", "HOSPITAL_H0007_KEY", "HOSPITAL_H0031_KEY", "REVIEWER_KEY",
                             "INSURER_KEY", "ADMIN_KEY"}
        assert all(KEY.fullmatch(k) for k in keys.values())
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.2)
        response = httpx.post(
            f"{base}/v1/settlements", json=example("EX-01"),
            headers={"Authorization": f"Bearer {keys['HOSPITAL_H0002_KEY']}"}, timeout=30,
        )
        assert response.status_code == 201, response.text
        assert response.json()["payments"]["basic"] == "966.48"
        metrics = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {keys['ADMIN_KEY']}"}, timeout=10)
        assert "settlement_http_request_duration_seconds_bucket" in metrics.text
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            proc.wait()
