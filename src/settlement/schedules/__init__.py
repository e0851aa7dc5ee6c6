"""Fee schedules: strict loading of dated versions into typed, immutable values."""

from .loader import ScheduleError, load_region, load_version
from .types import ScheduleSet, ScheduleVersion

__all__ = ["ScheduleError", "ScheduleSet", "ScheduleVersion", "load_region", "load_version"]
