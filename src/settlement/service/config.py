"""Service settings, read from the environment (prefix ``SETTLEMENT_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

import settlement

DEFAULT_DATABASE_URL = "sqlite:///./settlement.db"


def bundled_schedules() -> Path:
    """The fee schedules shipped with the project (``fee_schedules/heilongjiang``)."""
    return Path(settlement.__file__).resolve().parents[2] / "fee_schedules" / "heilongjiang"


def normalize_database_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3; everything else is kept."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def region_dir(path: Path) -> Path:
    """A region folder, or a ``fee_schedules/`` root that holds exactly one region."""
    if any(path.glob("*/schedule.yaml")):
        return path
    regions = [p for p in sorted(path.iterdir()) if p.is_dir() and any(p.glob("*/schedule.yaml"))]
    if len(regions) == 1:
        return regions[0]
    return path  # the loader names what is wrong


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SETTLEMENT_", extra="ignore")

    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL; postgresql://… uses psycopg 3. Read by every command.",
    )
    schedules: Path = Field(
        default_factory=bundled_schedules, description="region folder of fee schedules"
    )
    max_body_bytes: int = 2 * 1024 * 1024
    body_timeout_seconds: float = Field(
        30.0,
        description="a request body not whole this long after its headers: 408 and the connection closed"
        " (slow clients); the headers' own bound is the reverse proxy's (deploy/nginx/settlement.conf)",
    )
    timezone: str = Field("Asia/Shanghai", description="the day of a statement is a day in this zone")
    # 4, not 16: the threads of a worker share one GIL, and every runnable thread more is one more in
    # the queue for it (docs/PERFORMANCE.md §3, row 22); four still cover the commit's flush wait.
    worker_threads: int = Field(
        4,
        description="threads per worker process running requests; each holds at most one connection",
    )
    db_pool_size: int = Field(
        4,
        description="connections kept open per worker: at least worker_threads, or requests open and"
        " close overflow connections all the time (a PostgreSQL backend each; see docs/PERFORMANCE.md)",
    )
    db_max_overflow: int = 4
    preview_connections: int = Field(
        8,
        ge=1,
        description="PostgreSQL: connections per worker on which previews read from the event loop"
        " (service/pgloop.py; a preview waits for one as a settle waits for a counter connection)",
    )
    lock_timeout_ms: int = Field(5000, description="PostgreSQL lock_timeout per statement")
    statement_timeout_ms: int = 30000
    sqlite_busy_timeout_ms: int = 10000
    transaction_retries: int = Field(
        8, description="retries of a settle/reverse on deadlock or serialization failure"
    )
    retry_after_seconds: int = Field(5, description="Retry-After sent with 503")
    list_limit_max: int = 500
    review_rules: Path | None = Field(
        None, description="the review flags' rules (YAML); default: review_rules.yaml shipped in the package"
    )
    flags_refresh_seconds: float = Field(
        10.0, description="the service refreshes review flags this often in the background; 0: never"
        " (then run `settlement flags refresh`)"
    )
    flags_refresh_margin_seconds: float = Field(
        120.0, description="the longest a settle or reversal transaction may live; the flags refresher's"
        " watermarks stay this far behind (service/reviews/flags.py)"
    )

    @property
    def sqlalchemy_url(self) -> str:
        return normalize_database_url(self.database_url)

