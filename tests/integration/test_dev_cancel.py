"""Cancelling under `taskflow dev`: the in-process notice reaches its worker at once."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.integration.processes import base_env, free_port, run_cli
from tests.integration.test_dev_mode import _start, _wait_status

# No lease renewal within the test: only the in-process notice can stop the handler.
NO_RENEWAL_SOON = {"TASKFLOW_LEASE_SECONDS": "900", "TASKFLOW_HEARTBEAT_SECONDS": "600"}


def test_dev_cancels_a_pending_and_a_running_task(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    api = f"{base}/api/tasks"
    env = base_env(**NO_RENEWAL_SOON)
    dev = _start(tmp_path, port, tmp_path / "dev.log", env)
    try:
        later = httpx.post(
            api, json={"type": "debug.echo", "payload": {}, "delay_seconds": 600}
        ).json()
        running = httpx.post(api, json={"type": "debug.sleep", "payload": {"seconds": 60}}).json()
        _wait_status(f"{api}/{running['id']}", "PROCESSING", dev)

        pending = httpx.post(f"{api}/{later['id']}/cancel")
        printed = run_cli(["cancel", running["id"], "--url", base], env)

        assert (pending.status_code, pending.json()["status"]) == (200, "CANCELLED")
        assert printed.returncode == 0, printed.stderr
        assert json.loads(printed.stdout)["cancel_requested"] is True
        done = _wait_status(f"{api}/{running['id']}", "CANCELLED", dev)
        assert done["result"] is None
        outcomes = [
            a["outcome"] for a in httpx.get(f"{api}/{running['id']}/attempts").json()["items"]
        ]
        assert outcomes == ["CANCELLED"]
    finally:
        assert dev.stop() == 0
