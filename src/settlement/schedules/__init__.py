"""Fee schedules: strict loading of dated versions into typed, immutable values.

The loader (pydantic, YAML) is imported on first use, so the engine, which
needs only `schedules.types`, stays free of validation code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .types import ScheduleSet, ScheduleVersion

if TYPE_CHECKING:
    from .loader import ScheduleError, load_region, load_version

__all__ = ["ScheduleError", "ScheduleSet", "ScheduleVersion", "load_region", "load_version"]


def __getattr__(name: str) -> Any:
    if name in ("ScheduleError", "load_region", "load_version"):
        from . import loader

        return getattr(loader, name)
    raise AttributeError(name)
