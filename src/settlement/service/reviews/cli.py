"""``settlement flags refresh|status``: the flags refresher from the command line (reviews.flags)."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from typing import Any


def refresh(settings: Any, *, everything: bool, batch: int) -> int:
    """One run of the refresher (``everything``: forget the checks first); prints what it did as JSON."""
    from settlement.service.db import make_database, run_transaction

    from . import flags
    from .rules import ReviewRulesError, rules_at

    try:
        rules = rules_at(str(settings.review_rules) if settings.review_rules else None)
    except ReviewRulesError as exc:
        for defect in exc.defects:
            print(defect, file=sys.stderr)
        return 2
    db = make_database(settings)
    try:
        if everything:
            run_transaction(db.write, flags.reset)
        started = time.perf_counter()
        stats = flags.refresh(
            db, rules, margin=dt.timedelta(seconds=settings.flags_refresh_margin_seconds), batch=batch
        )
        out = {**stats.as_dict(), "seconds": round(time.perf_counter() - started, 2), "rules": rules.source}
        print(json.dumps(out, ensure_ascii=False))
        if stats.busy:
            print("another refresher is running (the service's, or another command); try again", file=sys.stderr)
            return 1
    finally:
        db.dispose()
    return 0


def status(settings: Any) -> int:
    from settlement.service.db import make_database

    from . import flags

    db = make_database(settings)
    try:
        with db.read() as session:
            print(json.dumps(flags.status(session), ensure_ascii=False))
    finally:
        db.dispose()
    return 0
