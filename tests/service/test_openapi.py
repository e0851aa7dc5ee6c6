"""OpenAPI is the truth: a short schemathesis run over every operation the app has, for every role.

All of schemathesis' checks, a few examples per operation (the machine is shared;
about a minute on 2 cores): no 5xx, no status the document does not list, every
body in its documented schema, schema-valid requests accepted, invalid ones refused.
The operations are read from the app's own document, so routes added later are
covered without a list here.

Schema-valid data may still be refused by a rule the schema cannot state: a claim
of an unregistered person or hospital, an item outside the catalog, a day without
a schedule are ``422`` (never ``400``, which means "not what the document allows").
So positive data may be answered 2xx, 401, 403, 404, 409 or 422.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings

from settlement.service.app import create_app
from settlement.service.config import Settings

ROLES = ("hospital", "reviewer", "insurer", "admin")


def _document() -> dict[str, Any]:
    """The app's own document (an app built on an empty in-memory database: the routes are the same)."""
    return create_app(Settings(database_url="sqlite://")).openapi()


class TheTestApp:
    """The session's app (conftest), reached by schemathesis' in-process client; lifespan events are
    answered here, so its startup and shutdown (its connections, its preview recorder) stay conftest's."""

    app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await self.app(scope, receive, send)


THE_APP = TheTestApp()
CONFIG = schemathesis.config.SchemathesisConfig.from_dict(
    {"checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "401", "403", "404", "409", "422"]}}}
)
schema = schemathesis.openapi.from_dict(_document(), config=CONFIG)
schema.app = THE_APP  # as schemathesis.openapi.from_asgi sets it


@pytest.fixture
def the_app(app: Any) -> Any:
    THE_APP.app = app
    return app


@schema.parametrize()
@settings(
    max_examples=3,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented(case: Any, auth: Any, the_app: Any) -> None:
    for role in ROLES:  # every example as each role (schemathesis' lazy schema takes no parametrized fixture)
        case.call_and_validate(headers=auth[role])
