"""The report: its rows, the header (where and how it ran) and the Markdown table."""

from __future__ import annotations

import os
import platform
import shlex
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.auth import describe as describe_auth
from benchmarks.bench import Params
from benchmarks.deploy import Deployment, is_local
from benchmarks.phases import DRAINS, layouts
from benchmarks.targets import judge
from taskflow.config import Settings

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Row:
    key: str
    name: str
    unit: str
    value: float | str | None = None  # None: failed (see error)
    notes: str = ""
    error: str | None = None
    runs: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    floor: float | None = None  # the floor this figure is compared with, when measured
    ratio: float | None = None  # value / floor
    target: str | None = None  # issue 10's target for this figure, as the table writes it
    met: bool | None = None  # whether it is met; None when it could not be judged
    required: bool = True  # False: an error here does not make the run fail (the floors)


@dataclass
class Report:
    header: dict[str, Any]
    params: Params
    rows: list[Row]

    def row(self, key: str) -> Row:
        return next(r for r in self.rows if r.key == key)

    def failed(self) -> bool:
        return any(r.error is not None for r in self.rows if r.required)

    def judge(self, floors: Mapping[str, float]) -> None:
        """Fill each row's floor, ratio, target and whether it is met."""
        for row in self.rows:
            verdict = judge(row.key, None if row.error else row.value, floors)
            row.floor, row.ratio = verdict.floor, verdict.ratio
            row.target, row.met = verdict.target, verdict.met

    def to_json(self) -> dict[str, Any]:
        return {
            "header": self.header,
            "params": asdict(self.params),
            "measurements": [asdict(r) for r in self.rows],
        }


# -- the header and the table -----------------------------------------------------------------


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "--no-optional-locks", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _commit() -> str:
    commit = _git("rev-parse", "--short", "HEAD")
    if commit is None:
        return "unknown"
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return f"{commit} (with uncommitted changes)" if dirty else commit


def command_line(argv: Sequence[str]) -> str:
    exe = os.path.relpath(sys.executable)
    if exe.startswith(".."):
        exe = sys.executable
    return shlex.join([exe, "-m", "benchmarks.run", *argv])


def _where(address: str) -> str:
    return f"{address} (this host)" if is_local(address) else f"{address} (another host)"


def build_header(
    deploy: Deployment, params: Params, phases: Sequence[str], argv: Sequence[str]
) -> dict[str, Any]:
    place = deploy.describe()
    shipped = Settings()
    settings = {
        "TASKFLOW_LOG_LEVEL": shipped.log_level,
        "TASKFLOW_WORKER_CONCURRENCY": str(shipped.worker_concurrency),
        **deploy.settings,
    }
    host = socket.gethostname()
    return {
        "command": command_line(argv),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
        "host": {
            "name": host,
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "postgresql": {"address": place["database"], "database": deploy.name},
        "redis": {"address": place["redis"], "prefix": deploy.prefix},
        "processes": [
            f"all taskflow processes and the load generator run on {host}; "
            f"PostgreSQL on {_where(deploy.database_host)}, "
            f"Redis on {_where(deploy.redis_host)}; worker concurrency "
            f"{settings['TASKFLOW_WORKER_CONCURRENCY']}",
            *(f"{name}: {text}" for name, text in layouts(params).items() if name in phases),
            "every phase: this process polls PostgreSQL (every 50 ms while waiting)",
        ],
        "auth": describe_auth(deploy.auth),
        "settings": settings,  # of every phase: the shipped defaults but what --env changed
        "settings_changed": dict(deploy.settings),
        "phase_settings": {
            d.phase: dict(d.settings) for d in DRAINS if d.settings and d.phase in phases
        },
        "logs": place["logs"],
    }


def _value(row: Row) -> str:
    if row.error is not None:
        return "error"
    if isinstance(row.value, str):
        return row.value
    assert row.value is not None
    if row.unit == "tasks/s":
        return f"{row.value:,.0f}"
    if row.unit == "ms":
        return f"{row.value:.2f}"
    return f"{row.value:,.1f}"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render(report: Report) -> str:
    h = report.header
    pg = h["postgresql"]
    server = pg.get("server", {})
    lines = [
        "# taskflow benchmark",
        "",
        f"- command: `{h['command']}`",
        f"- date: {h['date']}; commit: {h['commit']}",
        f"- host: {h['host']['name']}, {h['host']['cpus']} CPUs, {h['host']['platform']}, "
        f"Python {h['host']['python']}; load average at start "
        f"{' '.join(map(str, h['host']['load_average_at_start']))}",
        f"- PostgreSQL: {pg['address']} (version {server.get('server_version', '?')}, "
        f"fsync {server.get('fsync', '?')}, synchronous_commit "
        f"{server.get('synchronous_commit', '?')}); a database of its own, dropped at the end",
        f"- Redis: {h['redis']['address']} (version {h['redis'].get('version', '?')}), key "
        f"prefix `{h['redis']['prefix']}:`, deleted at the end",
        "- processes:",
        *(f"  - {line}" for line in h["processes"]),
        f"- settings: {_settings(h)}",
        f"- API keys: {h['auth']}",
        "",
        "| measurement | value | unit | floor | ratio | target | notes |",
        "|---|---:|---|---:|---:|---|---|",
    ]
    for row in report.rows:
        notes = f"ERROR: {row.error}" if row.error is not None else row.notes
        lines.append(
            f"| {row.name} | {_value(row)} | {row.unit} | {_floor(row)} | "
            f"{'' if row.ratio is None else f'{row.ratio:.2f}'} | {_target(row)} | "
            f"{_cell(notes)} |"
        )
    return "\n".join(lines)


def _settings(header: Mapping[str, Any]) -> str:
    changed = header["settings_changed"]
    text = " ".join(f"{k}={v}" for k, v in header["settings"].items())
    text += f" (changed by --env: {', '.join(changed)})" if changed else " (the shipped defaults)"
    for phase, settings in header["phase_settings"].items():
        text += f"; phase {phase} only: {' '.join(f'{k}={v}' for k, v in settings.items())}"
    return text


def _floor(row: Row) -> str:
    if row.floor is None:
        return ""
    return f"{row.floor:,.0f}" if row.floor >= 100 else f"{row.floor:.2f}"


def _target(row: Row) -> str:
    if row.target is None:
        return ""
    verdict = {True: "met", False: "missed", None: "not judged"}[row.met]
    return f"{row.target}: {verdict}"
