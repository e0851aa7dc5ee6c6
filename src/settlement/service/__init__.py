"""The real-time settlement service (SPEC §9): FastAPI over the one engine.

Domain packages each hold their tables (``models``), request/response
schemas (``schemas``), data access (``repository``), rules of the domain
(``service``, which only flushes) and HTTP routes (``router``, which owns the
request's transaction). The settlement rules themselves live in
:mod:`settlement.engine`; :mod:`settlement.service.settlements.counter` is the
one place the service calls it.
"""
