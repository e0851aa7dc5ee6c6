"""Staff accounts: the password hash, sign-in and its lock-out, sessions, CSRF, `settlement users create`."""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import subprocess
import sys
import warnings
from typing import Any

import pytest
from fastapi import FastAPI

from settlement.service.accounts.models import StaffUser
from settlement.service.accounts.service import (
    LOCK_TIME,
    create_user,
    session_user,
    sign_in,
    sign_out,
)
from settlement.service.auth.keys import Role
from settlement.service.config import Settings
from settlement.service.errors import ServiceError

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

PASSWORD = "correct horse battery"


def _user(app: FastAPI, name: str = "clerk", role: str = "reviewer", district: str | None = None) -> None:
    with app.state.ctx.db.write() as session:
        create_user(session, name, role, PASSWORD, district=district)
        session.commit()


def _login_form(client: Any) -> str:
    response = client.get("/login")
    assert response.status_code == 200
    return re.search(r'name="csrf_token" value="([^"]+)"', response.text).group(1)  # type: ignore[union-attr]


def _post_login(client: Any, password: str, name: str = "clerk") -> Any:
    token = _login_form(client)
    return client.post("/login", data={"username": name, "password": password, "csrf_token": token, "next": ""},
                       follow_redirects=False)


def test_password_is_stored_as_argon2_hash(app: FastAPI) -> None:
    _user(app)
    with app.state.ctx.db.read() as session:
        stored = session.get(StaffUser, "clerk")
        assert stored is not None and stored.password_hash.startswith("$argon2id$")
        assert PASSWORD not in stored.password_hash


def test_user_fields_are_checked(app: FastAPI) -> None:
    with app.state.ctx.db.write() as session:
        with pytest.raises(ServiceError) as bad:
            create_user(session, "a b", "hospital", "short", district="23x")
        fields = {e["field"] for e in bad.value.errors or []}
        assert fields == {"name", "role", "district", "password"}
        with pytest.raises(ServiceError, match="only reviewers"):
            create_user(session, "ins", "insurer", PASSWORD, district="2301")
        create_user(session, "dup", "admin", PASSWORD)
        with pytest.raises(ServiceError) as dup:
            create_user(session, "dup", "admin", PASSWORD)
        assert dup.value.status == 409


def test_sign_in_sets_a_strict_http_only_cookie_and_opens_pages(app: FastAPI) -> None:
    _user(app)
    client = TestClient(app, base_url="https://testserver")
    response = _post_login(client, PASSWORD)
    assert response.status_code == 303 and response.headers["location"] == "/review/settlements"
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("stl_session="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" in cookie
    assert client.get("/review/settlements").status_code == 200


def test_cookie_is_not_secure_over_plain_http(app: FastAPI) -> None:
    _user(app)
    response = _post_login(TestClient(app), PASSWORD)
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("stl_session="))
    assert "Secure" not in cookie


def test_wrong_password_shows_the_form_with_a_message(app: FastAPI) -> None:
    _user(app)
    response = _post_login(TestClient(app), "wrong password!")
    assert response.status_code == 401 and "用户名或密码错误" in response.text
    response = _post_login(TestClient(app), PASSWORD, name="nobody")
    assert response.status_code == 401 and "用户名或密码错误" in response.text


def test_login_without_its_csrf_token_is_refused(app: FastAPI) -> None:
    _user(app)
    client = TestClient(app)
    _login_form(client)
    response = client.post("/login", data={"username": "clerk", "password": PASSWORD}, follow_redirects=False)
    assert response.status_code == 403
    response = client.post("/login", data={"username": "clerk", "password": PASSWORD, "csrf_token": "guess"},
                           follow_redirects=False)
    assert response.status_code == 403


def test_five_failures_in_fifteen_minutes_lock_the_account(app: FastAPI) -> None:
    _user(app)
    client = TestClient(app)
    for _ in range(5):
        assert _post_login(client, "wrong password!").status_code == 401
    locked = _post_login(client, PASSWORD)  # the right password, but locked
    assert locked.status_code == 401 and "已锁定" in locked.text
    with app.state.ctx.db.write() as session:
        later = dt.datetime.now(dt.UTC) + LOCK_TIME + dt.timedelta(seconds=1)
        token, user = sign_in(session, "clerk", PASSWORD, now=later).accepted()
        session.commit()
    assert user.role == "reviewer" and token


def test_failures_spread_over_more_than_fifteen_minutes_do_not_lock(app: FastAPI) -> None:
    _user(app)
    start = dt.datetime.now(dt.UTC)
    with app.state.ctx.db.write() as session:
        for i in range(5):
            refused = sign_in(session, "clerk", "wrong password!", now=start + dt.timedelta(minutes=4 * i)).refused
            assert refused is not None and refused.locked_until is None  # 16 minutes from the first to the fifth
        assert sign_in(session, "clerk", PASSWORD, now=start + dt.timedelta(minutes=17)).user is not None
        session.commit()


def test_sessions_end_on_sign_out_and_give_the_users_principal(app: FastAPI) -> None:
    _user(app, district="230102")
    with app.state.ctx.db.write() as session:
        token = sign_in(session, "clerk", PASSWORD).accepted()[0]
        session.commit()
    with app.state.ctx.db.write() as session:
        found = session_user(session, token)
        assert found is not None
        principal = found.principal
        assert (principal.role, principal.district, principal.user, principal.actor) == (
            Role.REVIEWER, "230102", "clerk", "clerk")
        assert session_user(session, token + "x") is None
        sign_out(session, token)
        session.commit()
        assert session_user(session, token) is None


def test_a_page_form_without_csrf_token_is_refused(app: FastAPI) -> None:
    _user(app)
    client = TestClient(app)
    _post_login(client, PASSWORD)
    assert client.post("/logout", data={}, follow_redirects=False).status_code == 403
    assert client.get("/review/settlements").status_code == 200  # still signed in
    page = client.get("/review/settlements").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    response = client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert response.status_code == 303
    assert client.get("/review/settlements", follow_redirects=False).status_code == 303


def test_pages_redirect_to_sign_in_and_api_keys_open_none(app: FastAPI, auth: dict[str, dict[str, str]]) -> None:
    client = TestClient(app)
    for headers in ({}, auth["hospital"], auth["reviewer"]):
        response = client.get("/review/settlements?category=none", headers=headers, follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == "/login?next=%2Freview%2Fsettlements%3Fcategory%3Dnone"


def test_sign_in_goes_back_only_to_this_site(app: FastAPI) -> None:
    _user(app)
    client = TestClient(app)
    token = _login_form(client)
    response = client.post("/login", data={"username": "clerk", "password": PASSWORD, "csrf_token": token,
                                           "next": "//evil.example/x"}, follow_redirects=False)
    assert response.headers["location"] == "/review/settlements"


def cli_env(settings: Settings) -> dict[str, str]:
    """The command's environment: this database, and the code under test (PYTHONPATH, as a worktree sets it)."""
    return {"SETTLEMENT_DATABASE_URL": settings.database_url, "PATH": "/usr/bin:/bin",
            "PYTHONPATH": os.environ.get("PYTHONPATH", "")}


def test_users_create_reads_the_password_from_stdin(settings: Settings, app: FastAPI) -> None:
    env = cli_env(settings)
    done = subprocess.run(
        [sys.executable, "-m", "settlement.cli", "users", "create", "--role", "reviewer", "--name", "li",
         "--district", "2301"], input=PASSWORD + "\n", env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "created reviewer li in district 2301"
    with app.state.ctx.db.write() as session:
        _token, user = sign_in(session, "li", PASSWORD).accepted()
        session.commit()
    assert user.district == "2301"
    again = subprocess.run(
        [sys.executable, "-m", "settlement.cli", "users", "create", "--role", "reviewer", "--name", "li"],
        input=PASSWORD + "\n", env=env, capture_output=True, text=True, timeout=120,
    )
    assert again.returncode == 2 and "exists already" in again.stderr


def test_an_insurer_account_is_limited_to_its_funds_like_an_insurer_key(settings: Settings, app: FastAPI) -> None:
    env = cli_env(settings)

    def create(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "settlement.cli", "users", "create", *args],
                              input=PASSWORD + "\n", env=env, capture_output=True, text=True, timeout=120)

    done = create("--role", "insurer", "--name", "ins", "--fund", "critical_illness", "--fund", "basic")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "created insurer ins for the funds basic, critical_illness"
    with app.state.ctx.db.write() as session:
        _token, user = sign_in(session, "ins", PASSWORD).accepted()
        session.commit()
    assert user.funds == {"basic", "critical_illness"} and user.principal.funds == user.funds
    assert user.principal.sees_fund("basic") and not user.principal.sees_fund("medical_assistance")
    unknown = create("--role", "insurer", "--name", "ins2", "--fund", "nope")
    assert unknown.returncode == 2 and "no fund nope; the funds are: basic," in unknown.stderr
    reviewer = create("--role", "reviewer", "--name", "rev2", "--fund", "basic")
    assert reviewer.returncode == 2 and "only insurers are limited to funds" in reviewer.stderr


def test_read_password_takes_one_line() -> None:
    from settlement.service.accounts.commands import read_password

    assert read_password(io.StringIO("s3cret pass\nignored\n")) == "s3cret pass"
    assert read_password(io.StringIO("")) is None
