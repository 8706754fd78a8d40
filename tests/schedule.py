"""The order in which `make test`'s two pytest workers take the test modules: longest first.

pytest-xdist's ``--dist loadfile`` hands out whole modules, by default the ones with the most
tests first. Those are unit modules of many quick cases, so the longest modules (one benchmark
run, the chaos run, the state machines) came last, and one worker ran the last of them alone
for minutes while the other had finished. Handed out longest first, the quick modules fill in
at the end instead (the "longest processing time first" rule). `make test` passes
``--no-loadscope-reorder`` so that xdist keeps this order.

``LONGEST`` names the modules that take a minute or more on two busy cores, longest first, as
measured in a full run (``--junitxml``, the time of each module's tests summed; see the README's
Development section). A module not named goes after them: integration tests, then contract
tests, then unit tests, each group in its usual order. A stale list costs time, never a test.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

#: Seconds in the run of 2026-12-02 (quiet machine, pytest 13 min 50 s in all): 95, 86, 83, 80,
#: 77, 75, 71, 58, 50, 46, 44, 43, 43, 43.
LONGEST: Sequence[str] = (
    "tests/integration/test_cli.py",
    "tests/integration/test_faults_servers.py",
    "tests/integration/test_benchmark_smoke.py",
    "tests/contracts/test_services_machine.py",
    "tests/integration/test_faults_workers.py",
    "tests/integration/test_cli_operators.py",
    "tests/integration/test_flow_limits.py",
    "tests/integration/test_webhooks.py",
    "tests/integration/test_chaos.py",
    "tests/integration/test_database_fixtures.py",
    "tests/integration/test_examples.py",
    "tests/integration/test_metrics.py",
    "tests/integration/test_fleet.py",
    "tests/integration/test_dev_mode.py",
)

#: The folders after the named modules, in this order.
_GROUPS = ("tests/integration/", "tests/contracts/", "tests/unit/")


def module_rank(path: str) -> tuple[int, int]:
    """Where the module at ``path`` (relative to the project, with slashes) goes."""
    if path in LONGEST:
        return 0, LONGEST.index(path)
    for group, folder in enumerate(_GROUPS, start=1):
        if path.startswith(folder):
            return group, 0
    return len(_GROUPS) + 1, 0


def longest_first(items: list[pytest.Item]) -> None:
    """Sort ``items`` by their module's rank, in place; within a rank, as collected."""
    items.sort(key=lambda item: module_rank(item.nodeid.split("::", 1)[0]))
