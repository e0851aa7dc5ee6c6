"""The engine is a pure package: importing it pulls in no web, database or validation layer."""

from __future__ import annotations

import subprocess
import sys


def test_engine_imports_no_web_or_database_code() -> None:
    code = (
        "import sys, settlement.engine, settlement.engine.trace, settlement.engine.state\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'fastapi', 'starlette', 'sqlalchemy', 'psycopg', 'alembic', 'uvicorn', 'pydantic', 'httpx'}"
        " or m.startswith('settlement.service'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
