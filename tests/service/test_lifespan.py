"""What a worker does once at its start, before its first request (service/app.py lifespan)."""

from __future__ import annotations

import gc
import warnings

from settlement.engine import Tables
from settlement.service.app import create_app
from settlement.service.config import Settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def test_start_freezes_what_it_built_so_full_collections_skip_it(
    settings: Settings, service_tables: Tables
) -> None:
    gc.unfreeze()
    app = create_app(settings, tables=service_tables)
    try:
        assert gc.get_freeze_count() == 0
        with TestClient(app) as client:
            frozen = gc.get_freeze_count()
            # the tables and the application are among what a full collection no longer walks
            assert frozen > 10_000
            assert client.get("/healthz").status_code == 200
    finally:
        gc.unfreeze()
        app.state.ctx.db.dispose()

