"""The worked examples settled through the API give what `settlement settle` gives."""

from __future__ import annotations

import json
import subprocess
import sys

from service_helpers import EXAMPLES, ROOT, example_lines, register_examples

RESULT_KEYS = (
    "claim_id", "schedule", "policy_year", "pathway", "disease_group", "amounts", "payments",
    "charity_by_fund", "patient_pays", "hospital_bears",
)


def test_worked_examples_through_the_api_match_the_cli(client, auth):
    cli = subprocess.run(
        [sys.executable, "-m", "settlement.cli", "settle", "--schedules", str(ROOT / "fee_schedules" / "heilongjiang"),
         str(EXAMPLES / "claims.jsonl")],
        capture_output=True, check=True, cwd=ROOT, timeout=300,
    )
    expected = [json.loads(line) for line in cli.stdout.decode().splitlines() if line.strip()]
    assert expected == [json.loads(line) for line in (EXAMPLES / "expected.jsonl").read_text().splitlines()
                        if line.strip()]
    register_examples(client, auth["reviewer"])
    for line, want in zip(example_lines(), expected, strict=True):
        hospital = json.loads(line)["hospital"]["id"]
        headers = {"Content-Type": "application/json", **auth[hospital]}
        response = client.post("/v1/settlements", content=line, headers=headers)
        if "error" in want:
            assert response.status_code == 422, (want, response.text)
            problem = response.json()
            assert (problem["code"], problem["detail"]) == (want["error"]["code"], want["error"]["message"])
            continue
        assert response.status_code == 201, response.text
        body = response.json()
        assert {key: body[key] for key in RESULT_KEYS} == want
        assert list(body)[:4] == ["settlement_id", "status", "hospital_id", "settled_at"]
