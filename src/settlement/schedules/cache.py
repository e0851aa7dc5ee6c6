"""A region's schedules as the last run that validated them read them, when nothing they depend on changed.

Validating a region folder (importing YAML and pydantic, building the models, reading) is a large part
of a short command's start (docs/PERFORMANCE.md §7.5). What `load_region` returns depends only on the
folder's path as given, the names of its version folders, the bytes of their files, the loader's code,
the Python and the libraries it validates with. A run that finds all of these equal — the files
compared byte for byte, not by hash — to those a validated read stored takes that read's result; any
difference, or anything unreadable, and the folder is read and validated again by `load_region`, which
also names every defect (a folder with defects is never stored).

The store: one pickle per region folder in ``$SETTLEMENT_CACHE_DIR`` (default
``$XDG_CACHE_HOME/settlement``, or ``~/.cache/settlement``), trusted as Python trusts its
``__pycache__``; where it cannot be written, every run validates.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import zlib
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from .folders import VERSION_FILES, ScheduleError, version_folders
from .types import ScheduleSet

FORMAT = 1
"""Changes when what is stored changes shape."""
_CODE = ("folders.py", "loader.py", "models.py", "types.py", "../money.py")
"""The loader's code (beside this file): its checks and the values it builds."""
_LIBRARIES = ("pydantic", "pydantic_core", "yaml")


def cache_dir() -> Path | None:
    """Where the validated reads are stored (None: nowhere, no home folder)."""
    if chosen := os.environ.get("SETTLEMENT_CACHE_DIR"):
        return Path(chosen)
    if base := os.environ.get("XDG_CACHE_HOME"):
        return Path(base) / "settlement"
    try:
        return Path.home() / ".cache" / "settlement"
    except RuntimeError:
        return None


def _libraries() -> tuple[Any, ...]:
    """The installed validating libraries, without importing them: each one's file, its size, time and inode
    (an upgrade writes a new file)."""
    found: list[Any] = []
    for name in _LIBRARIES:
        spec = find_spec(name)
        origin = spec.origin if spec is not None else None
        if origin is None:
            found.append((name, None))
            continue
        origin = os.path.realpath(origin)  # one answer whichever link to the environment the process came by
        stat = os.stat(origin)
        found.append((name, origin, stat.st_size, stat.st_mtime_ns, stat.st_ino))
    return tuple(found)


def _inputs(root: Path) -> tuple[Any, ...] | None:
    """Everything load_region(root) depends on; None when something cannot be read (load_region says what)."""
    here = Path(__file__).parent
    try:
        files = tuple(
            (folder.name, tuple((folder / name).read_bytes() for name in VERSION_FILES))
            for folder in version_folders(root)
        )
        code = tuple((here / name).read_bytes() for name in _CODE)
        libraries = _libraries()
    except (OSError, ScheduleError):
        return None
    return (FORMAT, sys.version, str(root), code, libraries, files)


def _store_file(root: Path) -> Path | None:
    where = cache_dir()
    if where is None:
        return None
    name = f"{root.resolve()}\0{root}".encode("utf-8", "surrogateescape")
    return where / f"schedules-{zlib.crc32(name):08x}.pickle"


def load_region_cached(region_dir: str | Path) -> ScheduleSet:
    """`load_region(region_dir)`, from the store when its inputs are those of a validated read (see above)."""
    root = Path(region_dir)
    inputs = _inputs(root)
    store = _store_file(root) if inputs is not None else None
    if store is not None:
        try:
            stored = pickle.loads(store.read_bytes())
        except Exception:  # none yet, unreadable, or of other classes: validate
            stored = None
        if isinstance(stored, tuple) and len(stored) == 2 and stored[0] == inputs:
            schedules = stored[1]
            if isinstance(schedules, ScheduleSet):
                return schedules
    from .loader import load_region

    schedules = load_region(root)
    if store is not None and _inputs(root) == inputs:  # unchanged while it was read: the result is theirs
        _write(store, (inputs, schedules))
    return schedules


def _write(store: Path, value: Any) -> None:
    """Stored whole or not at all (a run reading at the same time sees the old file or the new)."""
    part = store.with_name(f"{store.name}.{os.getpid()}.part")
    try:
        store.parent.mkdir(parents=True, exist_ok=True)
        part.write_bytes(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
        os.replace(part, store)
    except OSError:
        with contextlib.suppress(OSError):
            part.unlink(missing_ok=True)
