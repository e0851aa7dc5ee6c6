"""FastAPI dependencies: the service context, a read session, the caller and its role."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from .auth.keys import Role
from .auth.service import Principal, authenticate
from .context import ServiceContext
from .errors import forbidden, unauthorized


async def get_ctx(request: Request) -> ServiceContext:
    # async: FastAPI runs a sync dependency in the thread pool, a hop that costs more than this
    ctx: ServiceContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ServiceContext, Depends(get_ctx)]


def read_session(ctx: Ctx) -> Iterator[Session]:
    """A session for the request; the route commits what it writes, this only closes."""
    session = ctx.db.read()
    try:
        yield session
    finally:
        session.close()


ReadSession = Annotated[Session, Depends(read_session)]


def current_principal(request: Request, ctx: Ctx) -> Principal:
    header = request.headers.get("authorization")
    if not header:
        raise unauthorized()
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("use Authorization: Bearer <key>")
    with ctx.db.read() as session:
        principal = authenticate(session, token.strip())
    request.state.principal = principal
    return principal


def require(*roles: Role) -> Callable[..., Principal]:
    """A dependency admitting only keys of these roles (401 without a valid key, 403 otherwise)."""
    allowed = frozenset(roles)
    names = ", ".join(r.value for r in roles)

    async def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if principal.role not in allowed:
            raise forbidden(f"a {principal.role.value} key may not call this; allowed: {names}")
        return principal

    return dependency


AnyKey = Annotated[Principal, Depends(current_principal)]
