"""deploy/: the Prometheus alert rules pass promtool's check and their unit tests, and they and
the Grafana dashboard name only metrics taskflow exposes.

promtool comes from Debian's prometheus package, which `make` installs; missing, it fails here.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from taskflow.adapters.prometheus import PrometheusMetrics, exposition, fleet_families
from taskflow.domain.model import Task, TaskStatus

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "taskflow.json"
METRIC = re.compile(r"\btaskflow_[a-z_]+\b")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    found = shutil.which("promtool")
    assert found, "promtool is missing: `make` installs it (Debian's prometheus package)"
    return subprocess.run(
        [found, *args], cwd=RULES.parent, capture_output=True, text=True, timeout=120, check=False
    )


def test_promtool_checks_the_rules() -> None:
    checked = promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 4 rules found" in checked.stdout


def test_the_alerts_fire_as_their_unit_tests_expect() -> None:
    tested = promtool("test", "rules", "alerts_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


@dataclass(frozen=True)
class Queue:
    name: str
    ready: int
    delayed: int
    processing: int
    oldest_ready_age_seconds: float | None
    paused: bool
    consumers: int
    unconsumed: bool


def exposed_names() -> set[str]:
    """Every sample name a scrape of an API or of a worker can show."""
    metrics = PrometheusMetrics(CollectorRegistry())
    task = Task.new(id=uuid.uuid4(), type="t", payload={}, now=datetime.now(UTC))
    metrics.submitted([task])
    metrics.throttled([task])
    metrics.leases_expired([])
    metrics.request("GET", "/api/tasks", 200, 0.1)
    done = replace(task, status=TaskStatus.SUCCESS, attempts=1, finished_at=task.created_at)
    for status in (TaskStatus.FAILED, TaskStatus.CANCELLED):
        metrics.ended(replace(done, status=status), 0.1)
    metrics.ended(done, 0.1)
    metrics.ended(replace(task, attempts=1, retry_count=1), 0.1)
    metrics._expired["t", "default"].inc()
    metrics.started(replace(task, started_at=task.created_at))
    queue = Queue("default", 1, 0, 0, 2.0, False, 0, True)
    text = exposition(metrics, fleet_families([queue], []))
    names = {s.name for f in text_string_to_metric_families(text.decode()) for s in f.samples}
    return names | {"taskflow_fleet_up"}


def test_rules_and_dashboard_name_only_exposed_metrics() -> None:
    rules = yaml.safe_load(RULES.read_text())
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads(DASHBOARD.read_text())
    targets = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    assert targets, "the dashboard has no queries"
    exposed = exposed_names()
    for expr in [*expressions, *targets]:
        for name in METRIC.findall(expr):
            assert name in exposed, f"{name} (in {expr!r}) is not a metric taskflow exposes"


def test_the_dashboard_shows_every_metric_taskflow_exposes() -> None:
    text = DASHBOARD.read_text()
    families = {re.sub(r"_(bucket|count|sum)$", "", n) for n in exposed_names()}
    missing = sorted(f for f in families if f.startswith("taskflow_") and f not in text)
    assert not missing, missing
