"""What every request needs: settings, the database, the compiled fee schedules."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
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

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def business_date(self, at: dt.datetime) -> dt.date:
        """The day an event counts on in statements: its date in the service's time zone."""
        return at.astimezone(self.tz).date()
