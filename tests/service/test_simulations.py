"""POST /v1/simulations: a zipped draft on the stored claims of a period, the same numbers as the command."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

from service_helpers import ROOT, example_claims, register_examples

from settlement.cli import main

REGION = ROOT / "fee_schedules" / "heilongjiang"


def draft_zip(tmp_path: Path, broken: bool = False) -> bytes:
    target = tmp_path / "draft" / "heilongjiang"
    shutil.copytree(REGION, target)
    path = target / "2018" / "schedule.yaml"
    text = path.read_text().replace("2: 450.00, 3: 700.00}", "2: 650.00, 3: 700.00}", 1)
    if broken:
        text = text.replace("annual_cap: 100000.00", "annual_cap: 100000.001", 1)
    path.write_text(text)
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        for file in sorted(target.rglob("*")):
            archive.write(file, file.relative_to(target.parent).as_posix())
    return data.getvalue()


def post(client: Any, headers: Any, data: bytes, **fields: str) -> Any:
    form = {"from": "2018-01-01", "to": "2018-12-31", **fields}
    return client.post("/v1/simulations", data=form, files={"file": ("draft.zip", data)}, headers=headers)


def test_stored_claims_give_the_commands_numbers(client, auth, tmp_path, capsys):
    register_examples(client, auth["reviewer"])
    stored = []
    for claim in example_claims():
        response = client.post("/v1/settlements", json=claim, headers=auth[claim["hospital"]["id"]])
        if response.status_code == 201:
            stored.append(claim["claim_id"])
    # only the settled examples are stored: the expected results without an error (15 of the 20, all
    # discharged in 2018 or 2019); the five errors (EX-10, EX-11, EX-12, EX-19, EX-20) are refused
    expected = [json.loads(x) for x in (ROOT / "examples" / "expected.jsonl").read_text().splitlines() if x.strip()]
    assert stored == [x["claim_id"] for x in expected if "error" not in x] and len(stored) == 15
    data = draft_zip(tmp_path)
    response = post(client, auth["admin"], data, by="level", to="2019-12-31")
    assert response.status_code == 200, response.text
    api = response.json()
    assert api["claims"] == len(stored) and api["errors"] == {"baseline": 0, "draft": 0}
    assert (
        main(
            [
                "simulate",
                "--baseline",
                str(REGION),
                "--schedules",
                str(tmp_path / "draft" / "heilongjiang"),
                str(ROOT / "examples" / "claims.jsonl"),
                "--json",
                "--by",
                "level",
            ]
        )
        == 0
    )
    cli = json.loads(capsys.readouterr().out)
    for key in ("baseline", "draft", "delta", "groups"):
        assert api[key] == cli[key], key
    assert api["delta"]["basic"] == "-80.00"
    page = post(client, auth["admin"], data, format="html")
    assert page.headers["content-type"].startswith("text/html") and page.text.count("<svg") == 1


def test_a_draft_that_fails_validation_is_refused(client, auth, tmp_path):
    response = post(client, auth["admin"], draft_zip(tmp_path, broken=True))
    assert response.status_code == 422 and response.json()["code"] == "invalid_schedules"
    assert any("annual_cap" in e["message"] for e in response.json()["errors"])
    assert post(client, auth["insurer"], b"x").status_code == 403
    assert post(client, auth["admin"], b"not a zip").status_code == 422  # a binary as documented; a rule refuses it
