"""Listing and counting tasks through a real `taskflow api` on PostgreSQL: over HTTP, with the
Python client, and with `taskflow tasks list` / `taskflow tasks stats`."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from taskflow.client import Client, InvalidRequest, TaskCount, TaskStatus
from tests.integration.conftest import Stack, StackFactory
from tests.integration.processes import base_env, run_cli


@pytest.fixture(scope="module")
def api(module_stack_factory: StackFactory) -> Stack:
    # No worker: every task stays PENDING, so what each filter finds is known.
    built = module_stack_factory()
    built.start_api()
    return built


@pytest.fixture(scope="module")
def submitted(api: Stack) -> list[dict[str, Any]]:
    """Oldest first: three on queue "listing", two of them for customer 42 (as text and number)."""
    bodies = [
        {"queue": "listing", "metadata": {"customer": "42"}},
        {"queue": "listing", "metadata": {"customer": 7}},
        {"queue": "listing", "metadata": {"customer": 42}},
        {"queue": "other", "metadata": {}},
    ]
    return [api.submit({"type": "debug.echo", "payload": {}, **b}) for b in bodies]


def test_the_api_pages_through_a_filtered_list(api: Stack, submitted: list[Any]) -> None:
    wanted = [t["id"] for t in submitted if t["queue"] == "listing"][::-1]
    seen: list[str] = []
    cursor = None
    with Client(api.base_url) as client:
        while True:
            page = client.list(queue="listing", status=["PENDING"], limit=2, cursor=cursor)
            seen += [str(t.id) for t in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
            # A task submitted between pages is newer than every page to come.
            api.submit({"type": "debug.echo", "payload": {}, "queue": "listing"})
        customer = client.list(queue="listing", metadata={"customer": "42"}, limit=500)
    assert seen == wanted
    assert [str(t.id) for t in customer.items] == [submitted[2]["id"], submitted[0]["id"]]


def test_a_bad_parameter_is_a_400_problem_naming_it(api: Stack) -> None:
    response = httpx.get(f"{api.base_url}/api/tasks", params={"status": "DONE"})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in response.json()["errors"]] == ["status"]
    with Client(api.base_url) as client, pytest.raises(InvalidRequest) as refused:
        client.list(cursor="garbage")
    assert refused.value.status == 400
    assert [e.field for e in refused.value.errors] == ["cursor"]


def test_stats_counts_what_was_submitted(api: Stack, submitted: list[Any]) -> None:
    with Client(api.base_url) as client:
        counts = client.stats()
    assert TaskCount("other", "debug.echo", TaskStatus.PENDING, 1) in counts


def test_cli_tasks_list_prints_a_table_and_the_next_cursor(
    api: Stack, submitted: list[Any]
) -> None:
    args = ["tasks", "list", "--queue", "listing", "--metadata", "customer=42", "--limit", "1"]
    result = run_cli([*args, "--url", api.base_url], api.env)
    assert result.returncode == 0, result.stderr
    header, row, cursor_line = result.stdout.splitlines()
    assert header.split() == ["ID", "TYPE", "QUEUE", "STATUS", "ATTEMPTS", "CREATED_AT"]
    newest = submitted[2]
    assert row.split() == [
        newest["id"],
        "debug.echo",
        "listing",
        "PENDING",
        "0",
        newest["created_at"],
    ]
    cursor = cursor_line.removeprefix("next cursor: ")

    rest = run_cli([*args, "--cursor", cursor, "--json", "--url", api.base_url], api.env)
    assert rest.returncode == 0, rest.stderr
    page = json.loads(rest.stdout)
    assert [t["id"] for t in page["items"]] == [submitted[0]["id"]]


def test_cli_tasks_list_filters_by_status_and_time(api: Stack, submitted: list[Any]) -> None:
    after = submitted[-1]["created_at"]
    result = run_cli(
        [
            "tasks", "list", "--status", "PENDING", "--status", "FAILED",
            "--created-after", after, "--queue", "other", "--json", "--url", api.base_url,
        ],
        api.env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"items": [], "next_cursor": None}


def test_cli_tasks_stats_prints_counts(api: Stack, submitted: list[Any]) -> None:
    result = run_cli(["tasks", "stats", "--url", api.base_url], api.env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["QUEUE", "TYPE", "STATUS", "COUNT"]
    assert ["other", "debug.echo", "PENDING", "1"] in [line.split() for line in lines]


@pytest.mark.parametrize(
    ("args", "code", "said"),
    [
        (["--status", "DONE"], 2, "--status"),
        (["--metadata", "nokey"], 2, "--metadata"),
        (["--limit", "0"], 1, "HTTP 400: limit must lie in 1-500"),
        (["--created-before", "noon"], 1, "HTTP 400: created_before"),
    ],
)
def test_cli_tasks_list_refuses_bad_options_in_one_line(
    api: Stack, args: list[str], code: int, said: str
) -> None:
    result = run_cli(["tasks", "list", *args, "--url", api.base_url], api.env)
    assert result.returncode == code
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert said in lines[0]


def test_cli_tasks_list_help() -> None:
    result = run_cli(["tasks", "list", "--help"], base_env())
    assert result.returncode == 0, result.stderr
    assert "--metadata KEY=VALUE" in result.stdout
