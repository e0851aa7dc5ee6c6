"""Browser tests of the workspace: the real server (`settlement serve --demo` in a subprocess, on a database
of its own) driven by Playwright through Debian's Chromium (/usr/bin/chromium; .ci/run installs it).

SETTLEMENT_SCREENSHOTS=docs/screenshots makes the tests that show a page also save it at 1366×768.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--lang=zh-CN"]
VIEWPORT = {"width": 1366, "height": 768}


@dataclass
class Server:
    base: str
    password: str
    keys: dict[str, str]
    database_url: str
    env: dict[str, str]

    def cli(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "settlement.cli", *args], input=stdin, env=self.env,
                              capture_output=True, text=True, timeout=120)

    def api(self, role: str) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {self.keys[role]}"}, timeout=60)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("web")
    url = f"sqlite:///{home / 'web.db'}"
    env = {**os.environ, "SETTLEMENT_DATABASE_URL": url, "PYTHONUNBUFFERED": "1"}
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "settlement.cli", "serve", "--demo", "--port", str(port), "--log-level", "warning"],
        env=env, cwd=home, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert proc.stdout is not None
        keys: dict[str, str] = {}
        password = None
        lines = []
        while password is None:
            line = proc.stdout.readline()
            lines.append(line)
            assert line, "serve ended: " + "".join(lines)
            if line.startswith("export "):
                name, _, key = line[len("export "):].strip().partition("=")
                keys[name.removesuffix("_KEY").lower()] = key
            found = re.search(r"as reviewer with password: (\S+)", line)
            if found:
                password = found.group(1)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.2)
        yield Server(base, password, keys, url, env)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no {CHROMIUM} (apt-get install chromium fonts-noto-cjk; .ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport=VIEWPORT, locale="zh-CN", accept_downloads=True)
    ctx.set_default_timeout(60_000)  # a dashboard draws five charts; the machine is shared
    yield ctx
    ctx.close()


def sign_in(page: Any, server: Server, username: str = "reviewer", password: str | None = None) -> None:
    page.goto(f"{server.base}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password or server.password)
    page.click("button[type=submit]")


@pytest.fixture
def page(context: Any, server: Server) -> Any:
    """A browser page signed in as the demo reviewer."""
    p = context.new_page()
    sign_in(p, server)
    p.wait_for_url(re.compile(r".*/review/settlements.*"))
    return p


def import_dry_run(page: Any, server: Server, path: Path, csv: str) -> list[str]:
    """The import page's dry run of ``csv`` (written to ``path`` in GB18030, as a clerk's Excel saves it):
    the problem table's rows, tab-separated cells."""
    path.write_bytes(csv.encode("gb18030"))
    page.goto(f"{server.base}/review/persons/import")
    page.set_input_files("input[type=file]", str(path))
    page.click("form.upload button[type=submit]")
    page.wait_for_selector("#import-report")
    rows: list[str] = page.locator("#import-problems tbody tr").all_inner_texts()
    return rows


def screenshot(page: Any, name: str) -> None:
    """Saves the page at 1366×768 when SETTLEMENT_SCREENSHOTS names a folder."""
    folder = os.environ.get("SETTLEMENT_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"))
