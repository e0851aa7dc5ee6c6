"""The kernels' two forms: their plain-Python source, and that source compiled by numba when it pays.

Every loop of the engine, the columnar reader and the result writer is
written once, as plain Python over numpy arrays, and declared here with
:func:`kernel` (called from Python) or :func:`helper` (called only from other
kernels). Nothing imports numba until the compiled form is wanted: importing
numba and loading the kernels from its cache, let alone compiling them on a
first run, costs far more than a few claims take on the source itself
(docs/PERFORMANCE.md §7.4).

- A batch of :data:`SMALL` claims or more loads the compiled forms
  (:func:`want`) and runs compiled, as does everything after that in the
  process. A smaller batch runs whichever form is loaded.
- ``settlement serve`` compiles in a thread (:func:`compile_in_background`)
  and runs the source until the compiled forms are ready.

It is one implementation either way: the same source, which the tests hold
equal to its compiled form (tests/engine/test_properties.py).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast, overload

F = TypeVar("F", bound=Callable[..., Any])

SMALL = 2_000
"""Claims in a batch from which loading the compiled forms pays (docs/PERFORMANCE.md §7.4)."""


class Kernel:
    """A kernel's source (`py_func`) and, once loaded, its numba dispatcher (`compiled`)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.py_func = fn
        self.dispatcher: Any = None
        """Built by numba, not yet used by every thread (the background warm-up calls it first)."""
        self.compiled: Any = None
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any) -> Any:
        run = self.compiled
        if run is None:
            run = self.dispatcher if getattr(_local, "warming", False) else self.py_func
        return run(*args)


_helpers: list[tuple[Callable[..., Any], bool]] = []
_kernels: list[Kernel] = []
_lock = threading.RLock()
_local = threading.local()
_built = False
_published = False
_background: threading.Thread | None = None


def _register(fn: Callable[..., Any], inline: bool) -> None:
    from numba.extending import register_jitable

    register_jitable(inline="always" if inline else "never")(fn)


def _dispatcher(fn: Callable[..., Any]) -> Any:
    import numba

    return numba.njit(cache=True, nogil=True)(fn)


@overload
def helper(fn: F, *, inline: bool = False) -> F: ...


@overload
def helper(fn: None = None, *, inline: bool = False) -> Callable[[F], F]: ...


def helper(fn: F | None = None, *, inline: bool = False) -> F | Callable[[F], F]:
    """Declares a function that kernels call: plain Python until the kernels are compiled, then compiled
    into them (inline=True: numba inlines it into its caller). Returns the function itself."""

    def wrap(f: F) -> F:
        with _lock:
            _helpers.append((f, inline))
            if _built:
                _register(f, inline)
        return f

    return wrap(fn) if fn is not None else wrap


def kernel(fn: F) -> F:
    """Declares a kernel called from Python: the source runs until the compiled form is loaded."""
    k = Kernel(fn)
    with _lock:
        _kernels.append(k)
        if _built:
            k.dispatcher = _dispatcher(fn)
            if _published:
                k.compiled = k.dispatcher
    return cast(F, k)


def _build() -> None:
    global _built
    with _lock:
        if _built:
            return
        import warnings

        from numba.core.errors import NumbaIRAssumptionWarning

        # numba's own pedantic SSA check warns on helpers it inlines (inline=True) as overloads; the
        # compiled code is held equal to the source by the tests (tests/engine/test_jit.py)
        warnings.filterwarnings("ignore", category=NumbaIRAssumptionWarning)
        for fn, inline in _helpers:
            _register(fn, inline)
        for k in _kernels:
            k.dispatcher = _dispatcher(k.py_func)
        _built = True


def load() -> None:
    """Every kernel runs compiled from now on, in every thread (each compiles, or loads numba's cache,
    on its first call with new argument types)."""
    global _published
    with _lock:
        _build()
        for k in _kernels:
            k.compiled = k.dispatcher
        _published = True


def ready() -> bool:
    """Whether the compiled forms are in use."""
    return _published


def want(n: int) -> bool:
    """Whether a batch of n claims runs compiled; one of SMALL or more loads the compiled forms first."""
    if not _published and n >= SMALL:
        load()
    return _published


def compile_in_background(warm: Callable[[], object]) -> None:
    """Loads the compiled forms in a thread: `warm` runs there on them first (each kernel compiled or
    read from the cache for the argument types it will see), then every thread uses them. Until then
    the source runs. Once per process."""
    global _background
    with _lock:
        if _published or _background is not None:
            return

        def run() -> None:
            try:
                _build()
                _local.warming = True
                try:
                    warm()
                finally:
                    _local.warming = False
                load()
            except Exception:  # the source keeps running; a large batch will try again (want)
                import logging  # only here: a short command need not load it

                logging.getLogger(__name__).exception("compiling the kernels failed; running their Python source")

        _background = threading.Thread(target=run, name="settlement-jit", daemon=True)
        _background.start()


def wait_background(timeout: float | None = None) -> bool:
    """Waits for compile_in_background's thread (tests, benchmarks); whether the compiled forms are in use."""
    thread = _background
    if thread is not None:
        thread.join(timeout)
    return _published
