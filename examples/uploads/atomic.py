"""Write a file so that readers see the old one or the whole new one, never a part.

A worker can be killed at any instant (SIGKILL, the OOM killer, a power cut), and its task is
then run again. Writing the output in place would leave a truncated file under its final name
for anyone to read meanwhile, and for ever if the task then fails. Instead:

1. write to a temporary file in the *same directory* (so that the rename below stays within
   one file system, where it is atomic),
2. flush and ``fsync`` it, so that its bytes are on disk before any name points at them,
3. ``os.replace`` it onto the final name: one atomic step, which also replaces an older file,
4. ``fsync`` the directory, so that the rename itself survives a crash.

A writer killed before step 3 leaves only its temporary file (``.NAME.*.part``), which no
reader looks for; a periodic clean-up of old ``*.part`` files reclaims the space.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_write(path: Path, mode: str = "wb", **open_args: Any) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; it becomes ``path`` when the block ends without
    an exception, and is deleted when it raises. ``open_args`` go to ``open`` (``newline``,
    ``encoding``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would make the result private to this user
        with os.fdopen(fd, mode, **open_args) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
