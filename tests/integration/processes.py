"""Start real `taskflow` processes for end-to-end tests, and wait on conditions, never on sleeps."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import httpx

T = TypeVar("T")
TASKFLOW = str(Path(sys.executable).with_name("taskflow"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    condition: Callable[[], T | None], *, timeout: float, interval: float = 0.05, what: str
) -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Process:
    """One `taskflow …` subprocess with its output in a log file."""

    def __init__(
        self, args: list[str], env: Mapping[str, str], log_path: Path, cwd: Path | None = None
    ) -> None:
        self.args = args
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.popen = subprocess.Popen(
            [TASKFLOW, *args],
            env=dict(env),
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            self.popen.send_signal(sig)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then SIGKILL if it does not exit within ``timeout``; returns the exit code."""
        self.signal(signal.SIGTERM)
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            code = self.popen.wait(10)
        self._log.close()
        return code

    def output(self) -> str:
        if not self._log.closed:  # `stop` closes it; the file stays
            self._log.flush()
        return self.log_path.read_text(errors="replace")


def base_env(**overrides: str) -> dict[str, str]:
    """The environment of a test process: no TASKFLOW_* from outside, then ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKFLOW_")}
    env.update(overrides)
    return env


def wait_http_ok(url: str, *, timeout: float, process: Process | None = None) -> None:
    def ok() -> bool:
        if process is not None and not process.alive():
            raise AssertionError(f"process exited early:\n{process.output()[-3000:]}")
        try:
            return httpx.get(url, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ok, timeout=timeout, what=f"{url} to answer 200")


def run_cli(
    args: list[str], env: Mapping[str, str], timeout: float = 120.0, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TASKFLOW, *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
