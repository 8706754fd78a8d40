"""How the `taskflow` commands print: tables with rich, JSON for scripts.

On a terminal a table has a header rule and colours. Anywhere else (a pipe, a file) it is
plain text: an upper-case header, then one row a line, columns apart by two spaces, no
colour and no width limit, so ``awk`` and ``cut`` read it and nothing is cut at 80 columns.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import IO, Any

import msgspec
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

#: Where nothing may be cut: the width rich lays out for when the output is not a terminal.
UNLIMITED_WIDTH = 100_000

STATUS_STYLES = {
    "PENDING": "yellow",
    "PROCESSING": "cyan",
    "SUCCESS": "green",
    "FAILED": "bold red",
    "CANCELLED": "magenta",
}


def console(file: IO[str] | None = None) -> Console:
    """A console on ``file`` (standard output by default), coloured only on a terminal.

    Whether it is one is asked of the file itself: ``FORCE_COLOR``, which some CI systems set
    for every job, must not turn a pipe's plain rows into boxes (``NO_COLOR`` is honoured).
    """
    shown = file or sys.stdout
    if _is_terminal(shown):
        return Console(file=shown, force_terminal=True, highlight=False)
    return Console(
        file=shown,
        force_terminal=False,
        force_interactive=False,
        width=UNLIMITED_WIDTH,
        color_system=None,
        highlight=False,
        markup=False,
        emoji=False,
    )


def _is_terminal(file: IO[str]) -> bool:
    try:
        return file.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream
        return False


def error_console() -> Console:
    """Standard error: where ``submit --wait`` shows how its task goes."""
    return console(sys.stderr)


def as_json(value: Any) -> Any:
    """A client's answer as JSON values, written as the API wrote them (timestamps included)."""
    return _timestamps_as_text(msgspec.to_builtins(value, builtin_types=(datetime,)))


def print_json(value: Any) -> None:
    print(json.dumps(as_json(value), indent=2))


def print_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[str | Text]],
    *,
    out: Console | None = None,
    right: Iterable[str] = (),
) -> None:
    """``rows`` under the ``columns`` headers; the columns named in ``right`` are numbers."""
    shown = out or console()
    numbers = set(right)
    if shown.is_terminal:
        # The box draws a blank between columns: with one blank of padding, two in all.
        table = Table(
            box=box.SIMPLE_HEAD,
            header_style="bold",
            pad_edge=False,
            show_edge=False,
            padding=(0, 1, 0, 0),
        )
    else:
        table = Table(box=None, header_style=None, pad_edge=False, padding=(0, 2, 0, 0))
    timed = [name.endswith("_at") and shown.is_terminal for name in columns]
    for name, is_time in zip(columns, timed, strict=True):
        on_right = name in numbers and shown.is_terminal
        # A terminal's header may take two lines (OLDEST over READY), so that more columns fit.
        header = name.upper().replace("_", "\n") if shown.is_terminal else name.upper()
        table.add_column(
            header, justify="right" if on_right else "left", no_wrap=name == "id" or is_time
        )
    for row in rows:
        cells = [
            _short_time(value) if is_time and isinstance(value, str) else value
            for value, is_time in zip(row, timed, strict=True)
        ]
        # Text, never markup: a type or an error message with "[bold]" in it is printed as is.
        table.add_row(*(value if isinstance(value, Text) else Text(value) for value in cells))
    print_lines(shown, table)


#: How a terminal's table shows a timestamp: to the second, still in UTC.
SHORT_TIME = "2026-12-01 11:14:25Z"


def _short_time(value: str) -> str:
    if len(value) == 27 and value[10] == "T" and value.endswith("Z"):
        return f"{value[:10]} {value[11:19]}Z"
    return value


def print_lines(out: Console, renderable: Any) -> None:
    """``renderable`` on ``out``; off a terminal, without the blanks that pad its lines."""
    if out.is_terminal:
        out.print(renderable)
        return
    with out.capture() as captured:
        out.print(renderable)
    for line in captured.get().splitlines():
        out.file.write(line.rstrip() + "\n")


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))


def cell(value: Any) -> str:
    """One value in a table: ``-`` for none, else its text on one line."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return " ".join(str(value).split()) if isinstance(value, str) else str(value)


def compact(value: Any) -> str:
    """A JSON value on one line, as a cell or a field shows it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def age(seconds: float | None) -> str:
    """A duration for people: ``-``, ``45.2s``, ``12m05s``, ``3h20m``, ``2d04h``."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86_400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86_400}d{whole % 86_400 // 3600:02d}h"


def since(timestamp: str | None, now: datetime | None = None) -> str:
    """How long ago an RFC 3339 ``timestamp`` of the API was, as :func:`age` writes it."""
    if timestamp is None:
        return "-"
    then = datetime.fromisoformat(timestamp)
    return age(max(0.0, ((now or datetime.now(UTC)) - then).total_seconds()))


def _timestamps_as_text(value: Any) -> Any:
    # The API's own form (six fractional digits, Z), which msgspec would shorten at times.
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, dict):
        return {key: _timestamps_as_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_timestamps_as_text(item) for item in value]
    return value
