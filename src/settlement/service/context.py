"""What every request needs: settings, the database, the compiled fee schedules."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from settlement.engine import Tables

from .config import Settings
from .db import Database


@dataclass
class ServiceContext:
    settings: Settings
    db: Database
    tables: Tables
    tz: ZoneInfo
    previews: Any = None
    """previews.recorder.PreviewLog: where answered previews are recorded (None: not recorded)."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def today(self) -> dt.date:
        """Today in the service's time zone."""
        return self.business_date(self.now())

    def business_date(self, at: dt.datetime) -> dt.date:
        """The day an event counts on in statements: its date in the service's time zone."""
        return at.astimezone(self.tz).date()
