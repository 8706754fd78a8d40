"""`taskflow dev` is the only worker of its SQLite file: an exclusive lock beside it says so.

Holding it, a starting `taskflow dev` knows that whatever the file says is running was left
by a process that died, and takes it back at once instead of waiting out its lease.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import make_url

from taskflow.entrypoints.errors import CannotStart


def sqlite_file(database_url: str) -> Path | None:
    """The file of a SQLite store; None for a database server or an in-memory SQLite."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(str(url.database)).absolute()


@contextlib.contextmanager
def hold_store(database_url: str) -> Iterator[Path | None]:
    """Lock the store's SQLite file for as long as the block runs; yields the lock file's path.

    Yields None, locking nothing, when the store is not a SQLite file. Raises CannotStart
    when another process holds the lock. The kernel drops the lock when the process dies,
    however it dies.
    """
    database = sqlite_file(database_url)
    if database is None:
        yield None
        return
    lock = database.with_name(f"{database.name}.lock")
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise CannotStart(f"cannot open the lock {lock}: {exc.strerror or exc}") from None
    try:
        _lock(fd, lock, database)
        yield lock
    finally:
        os.close(fd)


def _lock(fd: int, lock: Path, database: Path) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip()
        by = f"pid {holder}" if holder.isdigit() else "another process"
        raise CannotStart(
            f"{database} is in use by another taskflow dev ({by} holds {lock}); "
            "stop it, or point TASKFLOW_DATABASE_URL at another file"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
