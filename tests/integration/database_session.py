"""Run only by test_database_fixtures.py, as a pytest session of its own (the name keeps it out
of every other run): a test that makes databases, writes their names to the file
``TASKFLOW_TEST_NAMES``, then fails (``TASKFLOW_TEST_ENDING=fail``) or waits to be stopped."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path

# A run started in the background (`cmd &`, as CI may start it) ignores SIGINT, and this
# session may inherit that: give it Ctrl-C back, as in a terminal, for the test that sends one;
# the others ignore it, as such a run does (then pytest-xdist's controller, stopped itself,
# could not interrupt its workers: it would kill them before they tear down).
if os.environ["TASKFLOW_TEST_ENDING"] == "SIGINT":
    signal.signal(signal.SIGINT, signal.default_int_handler)
else:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_makes_databases_then_ends_as_told(
    pg_database_factory: Callable[[], str], module_pg_database_factory: Callable[[], str]
) -> None:
    names = [
        pg_database_factory().rsplit("/", 1)[1],
        module_pg_database_factory().rsplit("/", 1)[1],
    ]
    told = Path(os.environ["TASKFLOW_TEST_NAMES"])
    written = told.with_suffix(".new")
    written.write_text("\n".join(names))
    written.rename(told)  # whole, or not there
    if os.environ["TASKFLOW_TEST_ENDING"] == "fail":
        raise AssertionError("failing on purpose")
    threading.Event().wait(120)  # until the signal the other test sends
