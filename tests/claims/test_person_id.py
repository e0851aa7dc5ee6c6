"""The person id's messages: the API's English text, word for word, and the catalog message behind it
(a page says it in its language, naming the id as its reader sees it)."""

from __future__ import annotations

import datetime as dt

import pytest

from settlement.catalog import Message
from settlement.claims.person_id import PersonIdError, check_person_id

ADMITTED = dt.date(2019, 3, 1)


@pytest.mark.parametrize(("value", "english", "values"), [
    ("2301021956", "person_id must have 18 characters, got 10", {"length": 10}),
    ("23010219560312041X0", "person_id must have 18 characters, got 19", {"length": 19}),
    ("2301021956031204AX", "person_id: the first 17 characters must be digits", {}),
    ("23010219560312041Y", "person_id: the check character must be a digit or X", {}),
    ("230102195603120411", "person_id check character is wrong", {}),
    ("230102195602300419", "person_id birth date 19560230 is not a real date", {"digits": "19560230"}),
    ("11010120190302001X", "person_id birth date 2019-03-02 is after admission", {"birth": "2019-03-02"}),
])
def test_each_refusal_says_the_same_english_as_a_catalog_message(value: str, english: str, values: dict) -> None:
    with pytest.raises(PersonIdError) as caught:
        check_person_id(value, ADMITTED)
    assert str(caught.value) == english
    message = caught.value.message
    assert message.id.startswith("%(subject)s") and dict(message.values) == {"subject": "person_id", **values}
    assert str(message) == english
    relabelled = caught.value.with_subject(Message("Person ID"))
    assert str(relabelled) == "Person ID" + english.removeprefix("person_id")
    assert relabelled.render(lambda s: {"Person ID": "公民身份号码"}.get(s, s)).startswith("公民身份号码")


def test_a_valid_id_still_gives_its_birth_date() -> None:
    assert check_person_id("23010219560312041X", ADMITTED) == dt.date(1956, 3, 12)
