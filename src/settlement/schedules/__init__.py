"""Fee schedules: strict loading of dated versions into typed, immutable values.

The loader (pydantic, YAML) is imported on first use, so the engine, which
needs only `schedules.types`, stays free of validation code; the commands of
one short run read their folder through `load_region_cached` (schedules.cache).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .folders import ScheduleError
from .types import ScheduleSet, ScheduleVersion

if TYPE_CHECKING:
    from .cache import load_region_cached
    from .loader import load_region, load_version

__all__ = ["ScheduleError", "ScheduleSet", "ScheduleVersion", "load_region", "load_region_cached", "load_version"]


def __getattr__(name: str) -> Any:
    if name in ("load_region", "load_version"):
        from . import loader

        return getattr(loader, name)
    if name == "load_region_cached":
        from .cache import load_region_cached

        return load_region_cached
    raise AttributeError(name)
