"""The order `make test`'s workers take the modules in (tests/schedule.py)."""

from __future__ import annotations

from tests.conftest import ROOT
from tests.schedule import LONGEST, module_rank


def test_the_longest_modules_come_first_in_their_order_then_integration_contracts_unit() -> None:
    named = list(LONGEST)
    paths = [
        "tests/unit/test_config.py",
        "tests/contracts/test_queue_contract.py",
        "tests/integration/test_auth.py",
        *reversed(named),
    ]
    assert sorted(paths, key=module_rank) == [
        *named,
        "tests/integration/test_auth.py",
        "tests/contracts/test_queue_contract.py",
        "tests/unit/test_config.py",
    ]


def test_every_module_named_longest_exists() -> None:
    # A renamed module would silently lose its place at the front.
    assert LONGEST, "no module is named"
    missing = [path for path in LONGEST if not (ROOT / path).is_file()]
    assert not missing
