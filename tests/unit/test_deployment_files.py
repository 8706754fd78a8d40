"""Dockerfile, docker-compose.yml and .dockerignore, checked against the code they deploy.

No Docker engine is needed: the files are parsed and compared with the CLI's subcommands, the
variables config.py reads and the routes the app serves, so renaming any of those breaks here.
"""

from __future__ import annotations

import argparse
import fnmatch
import inspect
import json
import re
import shlex
import tomllib
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from taskflow import config
from taskflow.config import Settings
from taskflow.containers import build_container
from taskflow.entrypoints.cli import _parser
from taskflow.entrypoints.http.app import create_app
from taskflow.entrypoints.loading import load_registry

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
APP_SERVICES = ("migrate", "api", "worker")
HEALTH_PATH = re.compile(r"/health/\w+")
DURATION = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)")
SECONDS_PER_UNIT = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


# -- what the code offers -----------------------------------------------------------------------


@cache
def cli_commands() -> frozenset[str]:
    for action in _parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return frozenset(action.choices)
    raise AssertionError("the taskflow CLI has no subcommands")


@cache
def config_variables() -> frozenset[str]:
    return frozenset(re.findall(r"TASKFLOW_[A-Z_]+", inspect.getsource(config)))


@cache
def http_paths() -> frozenset[str]:
    app = create_app(build_container(Settings(), load_registry(None, debug_tasks=True)))
    return frozenset(route.path for route in app.routes)


# -- docker-compose.yml -------------------------------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def service(name: str) -> dict[str, Any]:
    found: dict[str, Any] = compose()["services"][name]
    return found


def words(value: str | list[Any]) -> list[str]:
    return shlex.split(value) if isinstance(value, str) else [str(word) for word in value]


def environment(name: str) -> dict[str, str]:
    env = service(name).get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def port_mappings(name: str) -> list[tuple[str | None, str]]:
    """(host port or None, container port) for each entry of a service's `ports`."""
    pairs = []
    for entry in service(name).get("ports") or []:
        if isinstance(entry, dict):
            published = entry.get("published")
            pairs.append((str(published) if published else None, str(entry["target"])))
        else:
            parts = str(entry).split("/")[0].split(":")
            pairs.append(((parts[-2] or None) if len(parts) > 1 else None, parts[-1]))
    return pairs


def seconds(duration: str | int) -> float:
    text = str(duration)
    parts = DURATION.findall(text)
    assert parts, f"not a duration: {text!r}"
    assert "".join(number + unit for number, unit in parts) == text, f"not a duration: {text!r}"
    return sum(float(number) * SECONDS_PER_UNIT[unit] for number, unit in parts)


def python_snippets(command: list[str]) -> list[str]:
    return [command[i + 1] for i, word in enumerate(command[:-1]) if word == "-c"]


def test_compose_has_exactly_the_five_services() -> None:
    assert "version" not in compose()
    assert set(compose()["services"]) == {"postgres", "redis", *APP_SERVICES}


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_build_this_repository_and_run_a_cli_command(name: str) -> None:
    build = service(name)["build"]
    if isinstance(build, str):
        build = {"context": build}
    path = ROOT / build["context"] / build.get("dockerfile", "Dockerfile")
    assert path.resolve() == DOCKERFILE
    command = words(service(name)["command"])
    assert command[0] == name
    assert command[0] in cli_commands()


def test_compose_sets_only_variables_that_config_reads() -> None:
    for name in compose()["services"]:
        unknown = {key for key in environment(name) if key.startswith("TASKFLOW_")}
        unknown -= config_variables()
        assert not unknown, f"{name} sets variables config.py never reads: {sorted(unknown)}"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_settings_accept_the_compose_environment(name: str) -> None:
    settings = Settings.from_env(environment(name))
    assert settings.redis_url is not None


def test_database_url_points_at_the_postgres_service() -> None:
    url = urlsplit(environment("api")["TASKFLOW_DATABASE_URL"])
    postgres = environment("postgres")
    assert url.scheme == "postgresql+asyncpg"
    assert (url.hostname, url.port or 5432) == ("postgres", 5432)
    assert url.path == "/" + postgres["POSTGRES_DB"]
    assert url.username == postgres.get("POSTGRES_USER", "postgres")
    if postgres.get("POSTGRES_HOST_AUTH_METHOD") != "trust":
        assert url.password == postgres["POSTGRES_PASSWORD"]


def test_redis_url_points_at_the_redis_service() -> None:
    url = urlsplit(environment("api")["TASKFLOW_REDIS_URL"])
    assert url.scheme == "redis"
    assert (url.hostname, url.port or 6379) == ("redis", 6379)


def test_every_app_service_shares_one_environment() -> None:
    assert environment("migrate") == environment("api") == environment("worker")


def test_migrations_run_once_after_postgres_is_healthy() -> None:
    migrate = service("migrate")
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate["restart"] == "no"


@pytest.mark.parametrize("name", ["api", "worker"])
def test_api_and_worker_start_after_migrations_succeed(name: str) -> None:
    depends_on = service(name)["depends_on"]
    assert depends_on["migrate"]["condition"] == "service_completed_successfully"
    assert depends_on["postgres"]["condition"] == "service_healthy"
    assert depends_on["redis"]["condition"] == "service_healthy"


def test_worker_can_be_scaled() -> None:
    assert "container_name" not in service("worker")
    assert [host for host, _ in port_mappings("worker") if host] == []


def test_worker_outlives_its_shutdown_grace() -> None:
    grace = float(environment("worker").get("TASKFLOW_SHUTDOWN_GRACE_SECONDS", 30))
    assert seconds(service("worker").get("stop_grace_period", "10s")) > grace


def test_redis_keeps_every_key() -> None:
    command = words(service("redis")["command"])
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert command[command.index("--appendonly") + 1] == "yes"


@pytest.mark.parametrize(
    ("name", "path"), [("postgres", "/var/lib/postgresql/data"), ("redis", "/data")]
)
def test_stores_keep_their_data_in_named_volumes(name: str, path: str) -> None:
    mounts = dict(str(volume).split(":", 1)[::-1] for volume in service(name)["volumes"])
    assert mounts[path] in compose()["volumes"]


def test_every_health_check_has_a_command() -> None:
    for name in compose()["services"]:
        check = service(name).get("healthcheck")
        if check is None or check.get("disable"):
            continue
        probe = check["test"]
        probe = ["CMD-SHELL", probe] if isinstance(probe, str) else [str(word) for word in probe]
        assert probe[0] in {"CMD", "CMD-SHELL"}, name
        assert probe[1:], f"{name} has a health check with no command"
        for snippet in python_snippets(probe):
            compile(snippet, f"{name} healthcheck", "exec")


def test_api_health_check_asks_a_real_readiness_route() -> None:
    probe = " ".join(words(service("api")["healthcheck"]["test"]))
    assert HEALTH_PATH.findall(probe) == ["/health/ready"]
    assert "/health/ready" in http_paths()


def test_worker_health_check_asks_its_own_readiness_port() -> None:
    probe = " ".join(words(service("worker")["healthcheck"]["test"]))
    port = environment("worker")["TASKFLOW_WORKER_HTTP_PORT"]
    assert f"http://127.0.0.1:{port}/health/ready" in probe


def test_services_without_http_turn_off_the_image_health_check() -> None:
    assert service("migrate")["healthcheck"] == {"disable": True}


# -- Dockerfile ---------------------------------------------------------------------------------


@cache
def dockerfile() -> tuple[tuple[str, str], ...]:
    """(KEYWORD, arguments) per instruction, continuation lines joined, comments dropped."""
    instructions, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).strip().partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued instruction"
    return tuple(instructions)


def final_stage() -> list[tuple[str, str]]:
    start = max(i for i, (keyword, _) in enumerate(dockerfile()) if keyword == "FROM")
    return list(dockerfile()[start:])


def last(keyword: str) -> str:
    found = [arguments for key, arguments in final_stage() if key == keyword]
    assert found, f"the final stage has no {keyword}"
    return found[-1]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, arguments in final_stage():
        if keyword != "ENV":
            continue
        tokens = shlex.split(arguments)
        if "=" not in tokens[0]:  # the legacy `ENV KEY value` form
            tokens = [f"{tokens[0]}={' '.join(tokens[1:])}"]
        for token in tokens:
            key, _, value = token.partition("=")
            env[key] = value
    return env


def without_flags(arguments: str) -> list[str]:
    return [word for word in shlex.split(arguments) if not word.startswith("--")]


def is_glob(source: str) -> bool:
    return any(char in source for char in "*?[")


def excluded_by_dockerignore(path: str) -> bool:
    excluded = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path, pattern.removeprefix("**/")):
            excluded = not negated
    return excluded


def test_image_is_multi_stage_on_python_311() -> None:
    bases = [without_flags(arguments)[0] for key, arguments in dockerfile() if key == "FROM"]
    assert len(bases) >= 2
    assert all(base.startswith("python:3.11") for base in bases)
    assert without_flags(last("FROM"))[0] == "python:3.11-slim"
    assert any(key == "COPY" and "--from=" in arguments for key, arguments in final_stage())


def test_project_is_installed_without_dev_extras() -> None:
    installs = [
        arguments for key, arguments in dockerfile() if key == "RUN" and "pip install" in arguments
    ]
    assert installs
    assert not any("[dev]" in arguments for arguments in installs)


def test_entrypoint_is_the_taskflow_console_script() -> None:
    assert json.loads(last("ENTRYPOINT")) == ["taskflow"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "taskflow" in pyproject["project"]["scripts"]


def test_default_command_is_a_cli_subcommand() -> None:
    assert json.loads(last("CMD"))[0] in cli_commands()


def test_exposed_port_is_the_one_compose_publishes_and_the_api_listens_on() -> None:
    exposed = {port.split("/")[0] for port in last("EXPOSE").split()}
    published = {container for _, container in port_mappings("api")}
    listening = Settings.from_env({**image_env(), **environment("api")}).port
    assert published == exposed == {str(listening)}


def test_copied_files_exist_and_reach_the_build_context() -> None:
    copies = [
        without_flags(arguments)[:-1]  # the last word is the destination
        for key, arguments in dockerfile()
        if key == "COPY" and "--from=" not in arguments
    ]
    assert copies
    for sources in copies:
        assert [path for source in sources for path in ROOT.glob(source)], f"COPY {sources}"
        for source in sources:
            if is_glob(source):  # Docker lets a wildcard match nothing
                continue
            assert (ROOT / source).exists(), f"COPY source {source} is missing"
            assert not excluded_by_dockerignore(source), f".dockerignore drops {source}"


def test_image_runs_as_a_non_root_user() -> None:
    assert last("USER").split(":")[0] not in {"root", "0"}


def test_image_listens_on_all_interfaces_with_unbuffered_output() -> None:
    env = image_env()
    assert env["TASKFLOW_HOST"] == "0.0.0.0"
    assert env["PYTHONUNBUFFERED"] == "1"
    unknown = {key for key in env if key.startswith("TASKFLOW_")} - config_variables()
    assert not unknown, f"the Dockerfile sets variables config.py never reads: {sorted(unknown)}"


def test_image_health_check_asks_a_real_liveness_route_without_curl() -> None:
    _, _, command = last("HEALTHCHECK").partition("CMD ")
    assert "curl" not in command
    snippets = python_snippets(json.loads(command))
    assert snippets, "the health check should be a `python -c` one-liner"
    for snippet in snippets:
        compile(snippet, "Dockerfile HEALTHCHECK", "exec")
    assert HEALTH_PATH.findall(command) == ["/health/live"]
    assert "/health/live" in http_paths()
