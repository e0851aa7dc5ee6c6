"""A region folder's layout, and its defects: what the loader reads and what the cache keys on.

Kept apart from the loader (pydantic, YAML) so that reading the layout imports neither.
"""

from __future__ import annotations

from pathlib import Path

SCHEDULE_FILE = "schedule.yaml"
CATALOG_FILE = "catalog.csv"
VERSION_FILES = (SCHEDULE_FILE, CATALOG_FILE)
"""The files of one version folder, and all that is read of it."""


class ScheduleError(Exception):
    """One or more defects in a schedule folder; `defects` lists them, each naming file and key."""

    def __init__(self, defects: list[str]) -> None:
        super().__init__("\n".join(defects))
        self.defects = defects


def version_folders(root: Path) -> list[Path]:
    """The version folders of a region folder, in name order (hidden ones left out)."""
    if not root.is_dir():
        raise ScheduleError([f"{root}: not a folder"])
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise ScheduleError([f"{root}: no version folders (expected <version>/{SCHEDULE_FILE})"])
    return folders
