"""Where litassist keeps its data: the per-user data folder, the last ingested data dir, and the check
that a configured folder can be one (moved out of :mod:`assistant.settings`, which re-exports it)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path


def _user_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "litassist"


def last_ingest_file() -> Path:
    """Where ``litassist ingest`` records the data dir it last wrote to."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "litassist" / "last-data-dir"


def default_data_dir() -> Path:
    """The per-user data folder; when that holds no index, the data dir of the last ingest (if any).

    So ``LITASSIST_DATA_DIR=/tmp/x litassist ingest …`` followed by a plain ``litassist stats`` reports on
    /tmp/x instead of an empty default index.
    """
    user = _user_data_dir()
    if has_index(user):
        return user
    with contextlib.suppress(OSError):
        last = Path(last_ingest_file().read_text(encoding="utf-8").strip())
        if last.is_absolute() and has_index(last):
            return last
    return user


def has_index(data_dir: Path) -> bool:
    """Whether ``data_dir`` holds an ingested index (a non-empty paper registry)."""
    for path in data_dir.glob("index/*/registry.sqlite"):
        with contextlib.suppress(sqlite3.Error):
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                if con.execute("SELECT COUNT(*) FROM papers").fetchone()[0]:
                    return True
            finally:
                con.close()
    return False


def remember_data_dir(path: Path) -> None:
    """Record ``path`` as the last ingested data dir (best effort)."""
    with contextlib.suppress(OSError):
        target = last_ingest_file()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(str(path.resolve()), encoding="utf-8")


def folder_value(value: object) -> object:
    """A configured folder (``data_dir``, ``cache_dir``) as given, checked: not empty (an empty
    ``LITASSIST_DATA_DIR=`` would mean the current directory), not an existing file and not under one.
    Raises ``ValueError`` with the reason (pydantic reports it naming the setting and its source)."""
    if value is None or not isinstance(value, str | Path):
        return value
    if not str(value).strip():
        raise ValueError("is empty; name a folder (or leave the variable unset for the default)")
    path = Path(value).expanduser()
    with contextlib.suppress(OSError):
        existing = next((p for p in (path, *path.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            where = "is a file" if existing == path else f"lies under {existing}, a file"
            raise ValueError(f"{path} {where}, not a folder")
    return value
