"""Why a process refuses to start; the `taskflow` command prints it as one line."""

from __future__ import annotations


class CannotStart(Exception):
    """This process cannot start; the message says why."""
