"""`--auth`: the benchmark's API key, and the proof that the API under test asks for it.

The key is made as an operator makes one, with `taskflow keys create` on the benchmark's own
database; from then on every API process it starts checks keys (docs/security.md), and every
request of the benchmark sends this one. The key never reaches the report or the logs.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Mapping

from benchmarks.client import Connection, Headers

KEY_NAME = "bench"
KEY_SCOPES = "submit,read,admin"  # admin: the lateness phase cancels tasks
#: The table that holds the key: kept when the phases empty the others.
KEY_TABLE = "api_keys"
#: A read that creates nothing: 401 without a key once the API checks keys, 200 with it.
PROBE = "/api/tasks?limit=1"


def describe(on: bool) -> str:
    """What the report's header says about authentication."""
    if not on:
        return "off: no API key exists, so the API checks none (the default)"
    return (
        f"on (--auth): a key {KEY_NAME!r} with scopes {KEY_SCOPES} made by `taskflow keys "
        "create` in the benchmark's database; every request sends it as `Authorization: "
        "Bearer`; each API process, once up, must answer 401 without it and 200 with it, or "
        "its phase fails"
    )


async def create_key(taskflow: str, env: Mapping[str, str]) -> str:
    """Make the key with ``taskflow keys create`` (``env`` names the database); answer it."""
    command = await asyncio.create_subprocess_exec(
        taskflow,
        "keys",
        "create",
        "--name",
        KEY_NAME,
        "--scopes",
        KEY_SCOPES,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    output, errors = await command.communicate()
    keys = [
        line.removeprefix("key:").strip()
        for line in output.decode(errors="replace").splitlines()
        if line.startswith("key:")
    ]
    if command.returncode != 0 or len(keys) != 1 or not keys[0]:
        # Only stderr: stdout may hold the key.
        raise RuntimeError(
            f"taskflow keys create exited with {command.returncode} and no key line: "
            f"{errors.decode(errors='replace').strip()[-1500:]}"
        )
    return keys[0]


async def check_enforced(host: str, port: int, headers: Headers) -> None:
    """Fail unless the API at ``port`` refuses a request without the key (401) and answers
    the same request with ``headers`` (200): figures taken otherwise would be an open API's."""
    bare = Connection(host, port)
    keyed = Connection(host, port, headers)
    try:
        refused, _ = await bare.request("GET", PROBE)
        admitted, answer = await keyed.request("GET", PROBE)
    finally:
        bare.close()
        keyed.close()
    where = f"the API on port {port}"
    if refused != 401:
        raise RuntimeError(
            f"{where} answered GET {PROBE} without a key with {refused}, not 401: it does not "
            "check keys, so --auth would measure an open API (TASKFLOW_AUTH=disabled, or no "
            "key in its database?)"
        )
    if admitted != 200:
        raise RuntimeError(
            f"{where} answered GET {PROBE} with the benchmark's key with {admitted}, not 200: "
            f"{answer[:300]!r}"
        )
