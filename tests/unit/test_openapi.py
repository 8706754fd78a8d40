"""The OpenAPI document and the pages under /schema (docs/api.md, "OpenAPI")."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from dependency_injector import providers
from litestar.testing import TestClient

from taskflow.adapters.memory import InMemoryTaskQueue, InMemoryTaskRepository
from taskflow.config import Settings
from taskflow.containers import build_container
from taskflow.domain.limits import QUEUE_MAX_LENGTH, QUEUE_REGEX
from taskflow.domain.model import TaskStatus
from taskflow.entrypoints.http import listing
from taskflow.entrypoints.http.app import create_app
from taskflow.entrypoints.loading import load_registry
from taskflow.registry import Registry

PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemOut"}}}
# Each route and the problems it may answer; a route added without its own is a failure below.
PROBLEMS = {
    ("post", "/api/tasks"): {"400", "408", "409", "413", "415", "422", "429", "503"},
    ("post", "/api/tasks/batch"): {"400", "408", "409", "413", "415", "422", "429", "503"},
    ("get", "/api/tasks"): {"400", "503"},
    ("get", "/api/tasks/stats"): {"503"},
    ("get", "/api/tasks/{task_id}"): {"400", "404", "503"},
    ("get", "/api/tasks/{task_id}/attempts"): {"400", "404", "503"},
    ("get", "/api/tasks/{task_id}/deliveries"): {"400", "404", "503"},
    ("post", "/api/tasks/{task_id}/cancel"): {"400", "404", "409", "503"},
    ("post", "/api/tasks/{task_id}/retry"): {"400", "404", "408", "409", "413", "415", "503"},
    ("post", "/api/tasks/retry"): {"400", "408", "413", "415", "503"},
    ("get", "/api/types"): set(),
    ("get", "/api/schedules"): {"503"},
    ("post", "/api/schedules/{name}/pause"): {"400", "404", "503"},
    ("post", "/api/schedules/{name}/resume"): {"400", "404", "503"},
    ("get", "/api/workers"): {"503"},
    ("get", "/api/queues"): {"503"},
    ("post", "/api/queues/{name}/pause"): {"400", "503"},
    ("post", "/api/queues/{name}/resume"): {"400", "503"},
    ("get", "/api/keys"): {"503"},
    ("post", "/api/keys"): {"400", "408", "413", "415", "503"},
    ("delete", "/api/keys/{key_id}"): {"400", "404", "503"},
    ("get", "/health/live"): set(),
}
# The routes anyone may call, API keys or not; every other one also answers 401 and 403.
OPEN = {("get", "/health/live")}
# OpenAPI 3.1, "Components Object": the keys of components.
COMPONENT_NAME = re.compile(r"^[a-zA-Z0-9.\-_]+$")


class Invoice(msgspec.Struct):
    order_id: str
    amount_cents: int


async def _handler(payload: Any, ctx: Any) -> None:
    return None


async def _send_invoice(payload: Invoice, ctx: Any) -> None:
    return None


def _registry() -> Registry:
    tasks = Registry()
    tasks.task("billing.send_invoice", queue="billing")(_send_invoice)
    # Both read "ABC" once capitalised: their components must still differ.
    tasks.task("a.b_c")(_handler)
    tasks.task("a_b.c")(_handler)
    return tasks


def _client(registry: Registry) -> TestClient:  # type: ignore[type-arg]
    container = build_container(Settings(), registry)
    container.repository.override(providers.Singleton(InMemoryTaskRepository, container.clock))
    container.queue.override(providers.Singleton(InMemoryTaskQueue, container.clock))
    return TestClient(app=create_app(container))


def _document(registry: Registry) -> dict[str, Any]:
    with _client(registry) as client:
        response = client.get("/schema/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


@pytest.fixture(scope="module")
def registry() -> Registry:
    tasks = load_registry(None, debug_tasks=True)
    tasks.include(_registry())
    return tasks


@pytest.fixture(scope="module")
def document(registry: Registry) -> dict[str, Any]:
    return _document(registry)


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_every_route_documents_its_problems_as_problem_json(document: dict[str, Any]) -> None:
    seen = {}
    for method, path, operation in _operations(document):
        errors = {s: r for s, r in operation["responses"].items() if int(s) >= 400}
        if (method, path) == ("get", "/health/ready"):
            assert set(errors) == {"503"}  # its own body, the readiness report
            continue
        for status, response in errors.items():
            assert response["content"] == PROBLEM, (method, path, status)
            assert response["description"], (method, path, status)
        seen[method, path] = set(errors)
    behind_a_key = {
        route: problems if route in OPEN else problems | {"401", "403"}
        for route, problems in PROBLEMS.items()
    }
    assert seen == behind_a_key


def test_every_route_has_an_operation_id_and_a_success_body(document: dict[str, Any]) -> None:
    ids = []
    for method, path, operation in _operations(document):
        ids.append(operation["operationId"])
        [success] = [r for s, r in operation["responses"].items() if s.startswith("2")]
        assert success["content"]["application/json"]["schema"], (method, path)
    assert len(ids) == len(set(ids))


def test_no_default_validation_schema_is_left(document: dict[str, Any]) -> None:
    for node in _walk(document):
        assert "extra" not in node.get("properties", {}), node
        kinds = node.get("type")
        assert not (isinstance(kinds, list) and "array" in kinds and "additionalProperties" in node)


def test_the_problem_schema_carries_its_errors_list(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    problem = schemas["ProblemOut"]
    assert set(problem["required"]) == {"title", "status", "detail"}
    errors = problem["properties"]["errors"]
    assert errors["type"] == "array"
    assert errors["items"] == {"$ref": "#/components/schemas/FieldProblem"}
    assert set(schemas["FieldProblem"]["required"]) == {"field", "message"}


def _submission(document: dict[str, Any]) -> dict[str, Any]:
    body = document["paths"]["/api/tasks"]["post"]["requestBody"]["content"]["application/json"]
    schema: dict[str, Any] = body["schema"]
    return schema


def test_the_submission_is_one_of_the_registered_types(
    document: dict[str, Any], registry: Registry
) -> None:
    schemas = document["components"]["schemas"]
    submission = _submission(document)
    mapping = submission["discriminator"]["mapping"]
    assert submission["discriminator"]["propertyName"] == "type"
    assert set(mapping) == {kind.name for kind in registry}
    assert [v["$ref"] for v in submission["oneOf"]] == [mapping[k] for k in sorted(mapping)]
    assert len(set(mapping.values())) == len(mapping)
    assert mapping["a.b_c"] != mapping["a_b.c"]
    for type_name, ref in mapping.items():
        name = ref.removeprefix("#/components/schemas/")
        assert COMPONENT_NAME.match(name), name
        variant = schemas[name]
        assert variant["properties"]["type"] == {"type": "string", "const": type_name}
        assert {"type", "payload"} <= set(variant["required"])
        assert {"queue", "priority", "metadata", "run_at"} <= set(variant["properties"])


def test_a_struct_payload_is_its_own_schema(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    ref = _submission(document)["discriminator"]["mapping"]["billing.send_invoice"]
    variant = schemas[ref.removeprefix("#/components/schemas/")]
    assert variant["properties"]["payload"] == {"$ref": "#/components/schemas/Invoice"}
    assert schemas["Invoice"]["properties"] == {
        "order_id": {"type": "string"},
        "amount_cents": {"type": "integer"},
    }
    echo = schemas[_submission(document)["discriminator"]["mapping"]["debug.echo"].split("/")[-1]]
    assert echo["properties"]["payload"]["type"] == "object"


def test_each_item_of_a_batch_is_the_same_one_of(document: dict[str, Any]) -> None:
    batch = document["components"]["schemas"]["SubmitBatchIn"]["properties"]["tasks"]
    assert batch["type"] == "array"
    assert batch["items"] == _submission(document)


def test_without_registered_types_the_submission_is_the_plain_struct() -> None:
    document = _document(Registry())
    assert _submission(document) == {"$ref": "#/components/schemas/SubmitTaskIn"}
    assert "type" in document["components"]["schemas"]["SubmitTaskIn"]["properties"]


def test_the_listing_documents_the_parameters_it_reads(document: dict[str, Any]) -> None:
    operation = document["paths"]["/api/tasks"]["get"]
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert set(parameters) == listing._KNOWN
    assert all(p["in"] == "query" and not p["required"] for p in parameters.values())
    status = parameters["status"]
    assert (status["schema"]["type"], status["explode"]) == ("array", True)
    assert status["schema"]["items"]["enum"] == [s.value for s in TaskStatus]
    assert parameters["limit"]["schema"]["type"] == "integer"
    assert parameters["created_after"]["schema"]["format"] == "date-time"
    assert "metadata.KEY" in operation["description"]


def test_submissions_document_the_idempotency_key_and_their_headers(
    document: dict[str, Any],
) -> None:
    for path in ("/api/tasks", "/api/tasks/batch"):
        operation = document["paths"][path]["post"]
        assert [p["name"] for p in operation["parameters"]] == ["Idempotency-Key"]
        assert "Idempotent-Replayed" in operation["responses"]["202"]["headers"]
    assert "Location" in document["paths"]["/api/tasks"]["post"]["responses"]["202"]["headers"]


def test_path_parameters_state_what_is_valid(document: dict[str, Any]) -> None:
    """Schemathesis generated plain strings until these said so, and never reached the logic."""
    seen = set()
    for _method, path, operation in _operations(document):
        for parameter in operation.get("parameters", []):
            if parameter["in"] != "path":
                continue
            schema = parameter["schema"]
            if parameter["name"] in ("task_id", "key_id"):
                assert schema["format"] == "uuid", path
            elif path.startswith("/api/queues/"):
                assert (schema["minLength"], schema["maxLength"]) == (1, QUEUE_MAX_LENGTH), path
                assert schema["pattern"] == QUEUE_REGEX, path
            seen.add(parameter["name"])
    assert seen == {"task_id", "key_id", "name"}


def test_bodies_refusing_unknown_fields_are_closed(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    closed = {
        name for name, schema in schemas.items() if schema.get("additionalProperties") is False
    }
    # The submission variants, the batch, both retry bodies, and a closed Struct payload.
    assert {"BillingSendInvoiceSubmission", "SubmitBatchIn", "RetryIn", "RetryManyIn"} <= closed
    assert "SleepIn" in closed  # debug.sleep's payload: forbid_unknown_fields=True
    assert "Invoice" not in closed  # a payload Struct that takes unknown fields stays open
    assert "TaskOut" not in closed  # answers may grow fields


def test_bounds_of_zero_are_kept(document: dict[str, Any]) -> None:
    """Litestar drops a bound of 0 (Schemathesis sent priority -667509598 as valid)."""
    fields = document["components"]["schemas"]["BillingSendInvoiceSubmission"]["properties"]
    assert (fields["priority"]["minimum"], fields["priority"]["maximum"]) == (0, 9)
    assert fields["max_retries"]["minimum"] == 0
    assert fields["delay_seconds"]["minimum"] == 0
    assert fields["timeout_seconds"]["exclusiveMinimum"] == 0


PAGES = ("/schema", "/schema/swagger", "/schema/oauth2-redirect.html")
REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


def test_the_schema_pages_load_nothing_from_elsewhere(registry: Registry) -> None:
    with _client(registry) as client:
        assets = set()
        for page in PAGES:
            response = client.get(page)
            assert response.status_code == 200, page
            assert response.headers["content-type"].startswith("text/html")
            for reference in REFERENCE.findall(response.text):
                assert not re.match(r"(?i)(https?:)?//", reference), (page, reference)
                assets.add(reference)
        assert assets, "the pages reference their script and style"
        for asset in sorted(assets):
            served = client.get(asset)
            assert served.status_code == 200, asset
            if asset.endswith(".css"):
                assert not re.search(r"(?i)url\(\s*['\"]?(https?:)?//", served.text), asset
        # Litestar's viewers that load from CDNs are not served.
        for page in ("/schema/redoc", "/schema/elements", "/schema/rapidoc"):
            assert client.get(page).status_code == 404
