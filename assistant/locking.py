"""One writer per data dir: an advisory file lock that concurrent ``litassist ingest`` runs take; and
a readers-writer lock around a local Chroma store's reads and writes (:class:`StoreLock`).

A second ingest on the same data dir fails at once with a one-line error instead of racing the first
inside Chroma (``table collections already exists``, ``database is locked``). The lock is released
when the holder exits, however it exits (the kernel drops ``flock`` locks of a killed process).
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import IO

from assistant.errors import ConfigError, LitassistError


class BusyError(LitassistError):
    """Another process holds the data dir's write lock."""


_HELD_HERE: set[str] = set()  # data dirs whose write lock this process holds


def make_folder(path: Path, variable: str) -> None:
    """Create the folder ``path`` (with its parents) unless it exists; a path that is a file, lies
    under one or cannot be written is one :class:`~assistant.errors.ConfigError` line naming the
    ``variable`` that sets it (``LITASSIST_DATA_DIR``)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"{variable}={path}: is a file, not a folder (name a folder)") from None
    except OSError as err:
        raise ConfigError(f"{variable}={path}: cannot create the folder ({err.strerror or err})") from None


def _held_exclusively(path: Path) -> bool:
    """Whether someone holds ``path``'s lock exclusively now (probed with a shared hold of an instant)."""
    try:
        fh = path.open("r")
    except OSError:  # no such file: nobody has locked it
        return False
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


class WriteLock:
    """Held while the object lives (or until :meth:`release`)."""

    PROBE_RETRIES = 20

    def __init__(self, data_dir: Path) -> None:
        """Take ``data_dir``'s write lock (creating the folder), or raise :class:`BusyError` at once when
        another process holds it; a data dir that cannot be created or written is a ``ConfigError``."""
        self._fh: IO[str] | None = None  # before anything can fail: __del__ releases what is held
        make_folder(data_dir, "LITASSIST_DATA_DIR")
        self.path = data_dir / ".ingest.lock"
        try:
            self._fh = self.path.open("a+")
        except OSError as err:
            raise ConfigError(f"LITASSIST_DATA_DIR={data_dir}: cannot write in it ({err.strerror or err})") from None
        try:
            for _ in range(self.PROBE_RETRIES):  # a question's probe (held()) holds it shared for microseconds
                try:
                    fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    time.sleep(0.01)
            else:
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
        self._key = str(data_dir.resolve())
        _HELD_HERE.add(self._key)

    @staticmethod
    def held(data_dir: Path) -> bool:
        """Whether an ingest of another process holds ``data_dir``'s write lock now (probed without
        waiting)."""
        return str(data_dir.resolve()) not in _HELD_HERE and _held_exclusively(data_dir / ".ingest.lock")

    def release(self) -> None:
        if self._fh is not None:
            _HELD_HERE.discard(self._key)
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def __del__(self) -> None:
        self.release()


_EXCLUSIVE: dict[str, int] = {}  # store lock -> the thread of this process holding it exclusively


class StoreLock:
    """Readers and writers of one local Chroma store, across processes: any number read at once, a
    write waits for them and they wait for it. Chroma's local (``PersistentClient``) files are not safe
    for a process to read while another rewrites them: ``ask`` during ``ingest --rebuild`` crashed in
    Chroma's native code and left a store every later query crashed on. Each hold opens its own file
    handles, so threads of one process hold it independently; the thread holding it exclusively passes
    through its own nested holds. A writer first takes a gate that readers pass on their way in, so a
    stream of overlapping readers cannot keep it out. A Chroma server orders its clients itself and
    needs none."""

    WAIT_S = 120.0  # a write batch holds it for well under a second; a rebuild until it has written everything

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / ".store.lock"
        self.gate = data_dir / ".store.gate"

    def _take(self, fh: IO[str], mode: int, deadline: float, what: str) -> bool:
        """Take ``fh``'s lock; True if it had to wait for it."""
        waited = False
        while True:
            try:
                fcntl.flock(fh, mode | fcntl.LOCK_NB)
                return waited
            except BlockingIOError:
                waited = True
                if time.monotonic() > deadline:
                    raise BusyError(
                        f"the index at {self.path.parent} stayed busy for {self.WAIT_S:.0f} s ({what}: another "
                        "process is writing it, e.g. an `ingest --rebuild` still embedding); try again"
                    ) from None
                time.sleep(0.005)

    @contextmanager
    def _held(self, mode: int, what: str) -> Iterator[bool]:
        key = str(self.path.resolve())
        me = threading.get_ident()
        if _EXCLUSIVE.get(key) == me:  # this thread holds it whole (``ingest --rebuild``): nothing to wait for
            yield False
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            gate, fh = self.gate.open("a"), self.path.open("a")
        except OSError as err:
            raise BusyError(f"{self.path}: cannot open the index's lock file ({err.strerror})") from None
        with gate, fh:
            deadline = time.monotonic() + self.WAIT_S
            waited = self._take(gate, mode, deadline, what)  # a waiting writer holds the gate: readers queue
            try:
                waited = self._take(fh, mode, deadline, what) or waited
            finally:
                fcntl.flock(gate, fcntl.LOCK_UN)
            if mode == fcntl.LOCK_EX:
                _EXCLUSIVE[key] = me
            try:
                yield waited
            finally:
                if mode == fcntl.LOCK_EX:
                    _EXCLUSIVE.pop(key, None)
                fcntl.flock(fh, fcntl.LOCK_UN)

    def writer_active(self) -> bool:
        """Whether a writer (of another process, or another thread's own hold) is inside now or waiting
        to go in (it holds the gate): probed without waiting."""
        return _held_exclusively(self.gate) or _held_exclusively(self.path)

    def reading(self) -> AbstractContextManager[bool]:
        """Held while reading the store (shared); gives whether it waited for a writer."""
        return self._held(fcntl.LOCK_SH, "reading")

    def writing(self) -> AbstractContextManager[bool]:
        """Held while writing the store (exclusive)."""
        return self._held(fcntl.LOCK_EX, "writing")
