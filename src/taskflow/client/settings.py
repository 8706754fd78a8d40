"""Where a client sends its requests, with which key, and how often it tries again."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DEFAULT_API_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True, slots=True)
class Connection:
    base_url: str
    headers: dict[str, str]
    retries: int
    clock: Callable[[], float]

    @classmethod
    def of(
        cls,
        base_url: str | None,
        *,
        api_key: str | None,
        actor: str | None,
        retries: int,
        clock: Callable[[], float],
    ) -> Connection:
        """``base_url`` and ``api_key`` as given, else from ``TASKFLOW_API_URL`` and
        ``TASKFLOW_API_KEY``; an empty or blank variable counts as unset. ``actor`` names who
        makes the changes (sent as ``Taskflow-Actor``, recorded with each retry)."""
        if retries < 0:
            raise ValueError("retries cannot be negative")
        url = base_url or _env("TASKFLOW_API_URL") or DEFAULT_API_URL
        key = api_key or _env("TASKFLOW_API_KEY")
        headers = {"Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        if actor:
            headers["Taskflow-Actor"] = actor
        return cls(url.rstrip("/"), headers, retries, clock)

    def http_options(self, timeout: float) -> dict[str, Any]:
        """The arguments of ``httpx.Client`` or ``httpx.AsyncClient``, transport apart."""
        return {"base_url": self.base_url, "headers": self.headers, "timeout": timeout}


def _env(name: str) -> str | None:
    return os.environ.get(name, "").strip() or None
