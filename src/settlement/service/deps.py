"""FastAPI dependencies: the service context, a read session, the caller and its role."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from .auth.keys import Role
from .auth.service import Principal, authenticate, bearer_key, check_role
from .context import ServiceContext


async def get_ctx(request: Request) -> ServiceContext:
    # async: FastAPI runs a sync dependency in the thread pool, a hop that costs more than this
    ctx: ServiceContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ServiceContext, Depends(get_ctx)]
PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
"""A route's own problem status in ``responses=``; service.openapi gives it the Problem schema."""


def read_session(ctx: Ctx) -> Iterator[Session]:
    """A session for the request; the route commits what it writes, this only closes."""
    session = ctx.db.read()
    try:
        yield session
    finally:
        session.close()


ReadSession = Annotated[Session, Depends(read_session)]


def current_principal(request: Request, ctx: Ctx) -> Principal:
    return principal_of(request, ctx)


def principal_of(
    request: Request, ctx: ServiceContext, *roles: Role, session: Session | None = None
) -> Principal:
    """The caller's key (401 without a valid one); with roles, 403 unless it has one of them.

    Called directly by the counter's routes, inside their one thread-pool hop
    (as a dependency it would cost a hop of its own), and on the session of
    their own transaction when given (one connection checkout per request).
    """
    key = bearer_key(request.headers.get("authorization"))
    if session is None:
        with ctx.db.read() as own:
            principal = authenticate(own, key)
    else:
        principal = authenticate(session, key)
    request.state.principal = principal
    return check_role(principal, roles) if roles else principal


def require(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting only keys of these roles (401 without a valid key, 403 otherwise)."""

    async def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        return check_role(principal, roles)

    return dependency


AnyKey = Annotated[Principal, Depends(current_principal)]
