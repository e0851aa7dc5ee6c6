"""The person registry: PUT, GET, CSV import (all or nothing), accumulators."""

from __future__ import annotations

from typing import Any

from service_helpers import example, person_id, register

PERSON = example("EX-01")["patient"]["person_id"]
OTHER = "231202194807070129"
THIRD = person_id(18)


def test_put_creates_then_replaces(client, auth):
    body = {"scheme": "resident", "categories": [{"category": "registered_poor", "valid_from": "2018-01-01"}]}
    created = client.put(f"/v1/persons/{PERSON.lower()}", json=body, headers=auth["reviewer"])
    assert created.status_code == 201
    entry = created.json()
    assert entry["person_id"] == PERSON  # a lower-case x is the same person
    assert entry["categories"] == [{"category": "registered_poor", "valid_from": "2018-01-01", "valid_to": None}]
    replaced = client.put(
        f"/v1/persons/{PERSON}",
        json={"scheme": "employee", "categories": [
            {"category": "low_income", "valid_from": "2019-01-01", "valid_to": None},
            {"category": "none", "valid_from": "2015-01-01", "valid_to": "2018-12-31"},
        ]},
        headers=auth["admin"],
    )
    assert replaced.status_code == 200
    got = client.get(f"/v1/persons/{PERSON}", headers=auth["insurer"]).json()
    assert got["scheme"] == "employee"
    assert [p["category"] for p in got["categories"]] == ["none", "low_income"]  # by valid_from
    assert got["created_at"] == entry["created_at"] and got["updated_at"] >= entry["updated_at"]


def test_put_refuses_overlaps_bad_ids_and_bad_bodies(client, auth):
    overlapping = {"scheme": "resident", "categories": [
        {"category": "registered_poor", "valid_from": "2018-01-01", "valid_to": "2018-06-30"},
        {"category": "low_income", "valid_from": "2018-06-30", "valid_to": None},
    ]}
    response = client.put(f"/v1/persons/{PERSON}", json=overlapping, headers=auth["reviewer"])
    assert response.status_code == 400 and response.json()["code"] == "invalid_request"
    assert "overlap" in response.json()["detail"]
    open_then_later = {"scheme": "resident", "categories": [
        {"category": "registered_poor", "valid_from": "2018-01-01"},
        {"category": "low_income", "valid_from": "2019-01-01"},
    ]}
    assert client.put(f"/v1/persons/{PERSON}", json=open_then_later, headers=auth["reviewer"]).status_code == 400
    backwards = {"scheme": "resident", "categories": [
        {"category": "none", "valid_from": "2018-01-01", "valid_to": "2017-01-01"}]}
    assert client.put(f"/v1/persons/{PERSON}", json=backwards, headers=auth["reviewer"]).status_code == 400
    for bad in ({"scheme": "nobody", "categories": []}, {"scheme": "resident", "categories": [
            {"category": "rich", "valid_from": "2018-01-01"}]}, {"scheme": "resident"}):
        response = client.put(f"/v1/persons/{PERSON}", json=bad, headers=auth["reviewer"])
        assert response.status_code == 400 and response.json()["errors"]
    good = {"scheme": "resident", "categories": [{"category": "none", "valid_from": "2018-01-01"}]}
    response = client.put(f"/v1/persons/{PERSON[:-1]}1", json=good, headers=auth["reviewer"])
    assert response.status_code == 422 and response.json()["code"] == "invalid_person_id"
    assert client.get(f"/v1/persons/{PERSON}", headers=auth["reviewer"]).status_code == 404


CSV_HEADER = "person_id,scheme,category,valid_from,valid_to\n"


def _import(client: Any, headers: dict[str, str], text: str) -> Any:
    return client.post("/v1/persons/import", content=text.encode(), headers={**headers, "Content-Type": "text/csv"})


def test_csv_import(client, auth):
    text = CSV_HEADER + (
        f"{PERSON},resident,registered_poor,2018-01-01,2018-12-31\n"
        f"{PERSON},resident,low_income,2019-01-01,\n"
        "\n"
        f"{OTHER},resident,extreme_poverty,2018-01-01,\n"
    )
    response = _import(client, auth["reviewer"], "\ufeff" + text)
    assert response.status_code == 200, response.text
    assert {k: response.json()[k] for k in ("persons", "periods", "new", "committed")} == {
        "persons": 2, "periods": 3, "new": 2, "committed": True}
    got = client.get(f"/v1/persons/{PERSON}", headers=auth["reviewer"]).json()
    assert [(p["category"], p["valid_to"]) for p in got["categories"]] == [
        ("registered_poor", "2018-12-31"), ("low_income", None)]
    # multipart upload works too; a file replaces the entries of the persons it lists
    files = {"file": ("persons.csv", CSV_HEADER + f"{OTHER},employee,none,2017-01-01,\n", "text/csv")}
    response = client.post("/v1/persons/import", files=files, headers=auth["admin"])
    assert response.status_code == 200 and response.json()["persons"] == 1 and response.json()["periods"] == 1
    assert response.json()["filename"] == "persons.csv" and response.json()["changed"] == 1
    assert client.get(f"/v1/persons/{OTHER}", headers=auth["reviewer"]).json()["scheme"] == "employee"
    assert client.get(f"/v1/persons/{PERSON}", headers=auth["reviewer"]).json()["scheme"] == "resident"


def test_csv_import_with_errors_imports_nothing(client, auth):
    text = CSV_HEADER + (
        f"{OTHER},resident,extreme_poverty,2018-01-01,\n"  # fine
        f"{PERSON[:-1]}1,resident,none,2018-01-01,\n"  # line 3: bad check character
        f"{PERSON},resident,wealthy,2018-01-01,\n"  # line 4: bad category
        f"{PERSON},resident,none,2018-13-01,\n"  # line 5: bad date
        f"{THIRD},resident,none,2018-01-01,2018-06-30\n"
        f"{THIRD},resident,low_income,2018-06-01,\n"  # line 7: overlaps line 6
        "230103197509200777,resident,none,2018-01-01,\n"
        "230103197509200777,employee,none,2019-01-01,\n"  # line 9: two schemes
        "too,few\n"  # line 10
    )
    response = _import(client, auth["reviewer"], text)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "invalid_import" and "nothing was imported" in body["detail"]
    lines = [(e["line"], e["field"]) for e in body["errors"]]
    assert lines == [(3, "person_id"), (4, "category"), (5, "valid_from"), (7, "valid_from"), (9, "scheme"),
                     (10, "(row)")]
    assert client.get(f"/v1/persons/{OTHER}", headers=auth["reviewer"]).status_code == 404
    bad_header = _import(client, auth["reviewer"], "id,scheme\n1,2\n")
    assert bad_header.status_code == 422 and bad_header.json()["errors"][0]["line"] == 1
    empty = _import(client, auth["reviewer"], CSV_HEADER)
    assert empty.status_code == 422


def test_accumulators_of_a_year(client, auth):
    register(client, auth["reviewer"], PERSON)
    response = client.get(f"/v1/persons/{PERSON}/accumulators", params={"year": 2018}, headers=auth["insurer"])
    assert response.status_code == 200
    assert response.json()["critical_base"] == "0.00" and response.json()["policy_year"] == 2018
    client.post("/v1/settlements", json=example("EX-01"), headers=auth["hospital"])
    body = client.get(f"/v1/persons/{PERSON}/accumulators?year=2018", headers=auth["admin"]).json()
    assert body == {
        "person_id": PERSON, "policy_year": 2018,
        "basic_paid": {"inpatient": "966.48", "outpatient": "0.00", "chronic_outpatient": "0.00"},
        "critical_base": "466.62", "critical_paid": "0.00", "assistance_base": "466.62",
        "assistance_paid": "326.63", "charity_paid": {"poverty_relief": "537.45", "children_major_illness": "0.00"},
    }
    other_year = client.get(f"/v1/persons/{PERSON}/accumulators?year=2019", headers=auth["admin"]).json()
    assert other_year["basic_paid"]["inpatient"] == "0.00"
    assert client.get(f"/v1/persons/{PERSON}/accumulators?year=abc", headers=auth["admin"]).status_code == 400
