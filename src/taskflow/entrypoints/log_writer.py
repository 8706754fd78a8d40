"""A logging handler whose lines are written by a thread of their own, in order, none lost.

The thread that logs formats its line there and then (so a traceback is read while it is
current) and appends it to a queue; the writer thread writes whatever waits in as few writes as
it can, each of whole lines and at most ``PIPE_BUF`` bytes, which a pipe never interleaves with
another process's writes. The event loop never waits on stderr, and a burst of lines costs one
system call per few dozen of them instead of one each.

``close()`` (``logging.shutdown`` calls it at exit; so does `taskflow.entrypoints.logs.finish`)
writes every line still waiting and stops the thread; lines logged after it are written by the
thread that logs them, as a forked child's are.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import select
import threading
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from typing import IO, Any, Protocol

#: The largest write a pipe keeps whole when several processes write to it (4096 on Linux).
CHUNK_BYTES = select.PIPE_BUF
#: Lines waiting beyond which the thread that logs waits for the writer: memory stays bounded
#: when stderr blocks (nobody reads the pipe), as it would with a plain StreamHandler.
BACKLOG = 20_000

#: How long the writer lets lines gather after a write; the most a line waits behind a busy one.
GATHER_SECONDS = 0.02


class LineFormat(Protocol):
    """How a record, or an event logged without one, becomes a line (newline included)."""

    def line(self, record: logging.LogRecord) -> bytes: ...

    def event_line(
        self, logger: str, level: int, event: str, facts: Mapping[str, Any]
    ) -> bytes: ...


class LineWriter(logging.Handler):
    """Writes each record as the line ``lines`` makes of it."""

    def __init__(self, stream: IO[str] | IO[bytes], lines: LineFormat) -> None:
        super().__init__()
        self.lines = lines
        self._write = _writer_of(stream)
        self._queue: deque[bytes | threading.Event] = deque()
        self._wake = threading.Event()
        self._idle = False  # the writer waits for ``_wake``: the next line must set it
        self._inline = False  # no writer thread: whoever logs writes (after close, in a fork)
        self._inline_lock = threading.Lock()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="taskflow-log-writer", daemon=True)
        self._thread.start()
        _writers.add(self)

    def handle(self, record: logging.LogRecord) -> bool:
        # No handler lock: the line is this thread's own and deque.append is atomic.
        if not self.filter(record):
            return False
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.lines.line(record)
        except Exception:
            self.handleError(record)
            return
        self._put(line)

    def write_event(self, logger: str, level: int, event: str, facts: Mapping[str, Any]) -> None:
        """Write what a record of ``event`` with ``facts`` would say, without making one."""
        self._put(self.lines.event_line(logger, level, event, facts))

    def _put(self, line: bytes) -> None:
        self._queue.append(line)
        if self._inline:
            self._drain_inline()
        elif self._idle:
            self._wake.set()
        if len(self._queue) > BACKLOG:
            self.flush()

    def flush(self) -> None:
        """Return once every line logged before the call is written."""
        if self._inline or threading.current_thread() is self._thread:
            self._drain_inline()
            return
        written = threading.Event()
        self._queue.append(written)
        self._wake.set()
        # A writer thread that died (it never should) must not hang the process.
        while not written.wait(0.5):
            if not self._thread.is_alive():
                self._drain_inline()
                return

    def close(self) -> None:
        """Write every waiting line, stop the writer thread; later lines are written inline."""
        if not self._inline:
            self._stopping = True
            self._wake.set()
            if self._thread.is_alive() and threading.current_thread() is not self._thread:
                self._thread.join()
            self._inline = True
            self._drain_inline()  # what was appended while the thread was stopping
        super().close()

    # -- the writer thread --------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            # Idle first, then clear, then look: a line appended after the look sees ``_idle``
            # and sets ``_wake`` after this clear, so the wait returns.
            self._idle = True
            self._wake.clear()
            if not self._queue:
                if self._stopping:
                    return
                self._wake.wait()
            self._idle = False
            # Whatever set ``_wake`` has its lines (or its flush mark) queued: the drain takes
            # them. Cleared, ``_wake`` ends the pause below only for a flush or close.
            self._wake.clear()
            self._drain()
            # Lines come in bursts: let the next ones gather, so that a busy process pays one
            # wake-up of this thread and one write per many lines, not per line.
            self._wake.wait(GATHER_SECONDS)

    def _drain(self) -> None:
        chunk: list[bytes] = []
        size = 0
        while self._queue:
            item = self._queue.popleft()
            if isinstance(item, threading.Event):  # a flush: everything before it goes out now
                self._send(chunk)
                chunk, size = [], 0
                item.set()
                continue
            if chunk and size + len(item) > CHUNK_BYTES:
                self._send(chunk)
                chunk, size = [], 0
            chunk.append(item)
            size += len(item)
        self._send(chunk)

    def _send(self, chunk: list[bytes]) -> None:
        if not chunk:
            return
        # A closed or broken stderr: there is nowhere left to say so.
        with contextlib.suppress(OSError, ValueError):
            self._write(b"".join(chunk))

    def _drain_inline(self) -> None:
        with self._inline_lock:
            self._drain()

    def _forked(self) -> None:
        # The child has no writer thread, and the lines still queued are the parent's to write.
        self._inline_lock = threading.Lock()
        self._queue.clear()
        self._inline = True


def _writer_of(stream: IO[str] | IO[bytes]) -> Callable[[bytes], None]:
    # Through a text stream's own layer (sys.stderr), not under it: whatever else is written to
    # the stream keeps its place among our lines.
    binary = isinstance(stream, io.RawIOBase | io.BufferedIOBase)

    def write(data: bytes) -> None:
        stream.write(data if binary else data.decode())  # type: ignore[arg-type]
        stream.flush()

    return write


_writers: weakref.WeakSet[LineWriter] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for writer in list(_writers):
        writer._forked()


os.register_at_fork(after_in_child=_after_fork_in_child)
