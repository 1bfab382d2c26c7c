"""One writer per data dir: an advisory file lock that concurrent ``litassist ingest`` runs take.

A second ingest on the same data dir fails at once with a one-line error instead of racing the first
inside Chroma (``table collections already exists``, ``database is locked``). The lock is released
when the holder exits, however it exits (the kernel drops ``flock`` locks of a killed process).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from assistant.errors import LitassistError


class BusyError(LitassistError):
    """Another process holds the data dir's write lock."""


class WriteLock:
    """Held while the object lives (or until :meth:`release`)."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / ".ingest.lock"
        self._fh: IO[str] | None = self.path.open("a+")
        try:
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._fh.seek(0)
            holder = self._fh.read().strip() or "another process"
            self._fh.close()
            self._fh = None
            raise BusyError(
                f"another ingest ({holder}) is writing to {data_dir}; wait for it to finish, then run again"
            ) from None
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(f"pid {os.getpid()}")
        self._fh.flush()

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def __del__(self) -> None:
        self.release()
