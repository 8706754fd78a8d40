"""The dashboard's defences in the browser's terms: the headers of every answer, and actions
refused unless they come from the dashboard's own page in the same browser (decision 31).

The fixtures are test_dashboard.py's: the app on the in-memory adapters.
"""

from __future__ import annotations

import re

import pytest

from taskflow.entrypoints.http.dashboard import HERE
from taskflow.entrypoints.http.dashboard.csrf import COOKIE, FIELD, TLS_COOKIE
from tests.unit.test_dashboard import SAME_SITE, Client, client, container, status_of, submit

__all__ = ["client", "container"]  # the fixtures, used by name

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def token_of(client: Client, task_id: str) -> str:
    page = client.get(f"/dashboard/tasks/{task_id}").text
    match = _TOKEN.search(page)
    assert match is not None, page
    return match.group(1)


# Headers


def _policy(response) -> dict[str, str]:  # type: ignore[no-untyped-def]
    policy = response.headers["content-security-policy"]
    return dict(part.strip().partition(" ")[::2] for part in policy.split(";"))


def test_every_dashboard_page_has_the_policy_and_the_headers(client: Client) -> None:
    task_id = submit(client, {"n": 1})
    for path in (
        "/dashboard/",
        "/dashboard/tasks",
        f"/dashboard/tasks/{task_id}",
        "/dashboard/queues",
        "/dashboard/workers",
        "/dashboard/schedules",
        "/dashboard/tasks/not-a-uuid",  # a fault page
        "/dashboard/tasks?limit=0",
    ):
        response = client.get(path)
        policy = _policy(response)
        assert policy["script-src"] == "'self'", path
        assert policy["style-src"] == "'self'", path
        assert policy["frame-ancestors"] == "'none'", path
        assert policy["default-src"] == "'none'", path
        assert "unsafe-inline" not in response.headers["content-security-policy"], path
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["referrer-policy"] == "same-origin", path
        assert response.headers["x-frame-options"] == "DENY", path
    # What the policy forbids, the templates do not do (dashboard.js and .css hold it all).
    for template in sorted((HERE / "templates").glob("*.html")):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), template.name
        assert not re.search(r"<style|\sstyle=|\son[a-z]+=", text), template.name


def test_no_dashboard_answer_is_stored_but_its_files_keep_their_validators(
    client: Client,
) -> None:
    task_id = submit(client, {"n": 1})
    answers = [
        client.get("/dashboard/"),
        client.get("/dashboard/tasks?status=PENDING"),
        client.get(f"/dashboard/tasks/{task_id}"),  # its payload, result and error
        client.get("/dashboard/queues"),
        client.get("/dashboard/workers"),
        client.get("/dashboard/schedules"),
        client.get("/dashboard/tasks/not-a-uuid"),  # a fault page
        client.get(f"/dashboard/lookup?id={task_id}", follow_redirects=False),
        client.get("/dashboard/sign-in", follow_redirects=False),  # no key yet: a redirect
        client.post(f"/dashboard/tasks/{task_id}/cancel", data={}, headers=SAME_SITE),
        client.post(
            f"/dashboard/tasks/{task_id}/cancel",
            data={FIELD: token_of(client, task_id)},
            headers=SAME_SITE,
            follow_redirects=False,
        ),
    ]
    for response in answers:
        where = f"{response.request.method} {response.request.url} {response.status_code}"
        assert response.headers.get("cache-control") == "no-store", where
    for name in ("dashboard.css", "dashboard.js"):
        asset = client.get(f"/dashboard/static/{name}")
        assert asset.status_code == 200, name
        assert "cache-control" not in asset.headers, name  # the browser's own heuristics
        assert {"etag", "last-modified"} <= set(asset.headers), name


def test_every_api_answer_has_the_cheap_headers(client: Client) -> None:
    task_id = submit(client, {"n": 1})
    answers = [
        client.post("/api/tasks", json={"type": "debug.echo", "payload": {"n": 1}}),
        client.get(f"/api/tasks/{task_id}"),
        client.get("/api/tasks/not-a-uuid"),  # a problem
        client.get("/no/such/route"),
        client.get("/health/live"),
        client.get("/schema/openapi.json"),
        client.get("/dashboard/static/dashboard.js"),  # a script: nosniff is what matters
    ]
    for response in answers:
        where = f"{response.request.method} {response.request.url.path}"
        assert response.headers["x-content-type-options"] == "nosniff", where
        assert response.headers["referrer-policy"] == "same-origin", where
        assert response.headers["x-frame-options"] == "DENY", where
        assert response.headers.get_list("x-content-type-options") == ["nosniff"], where


# Actions


def assert_strict_cookie(cookie: str, name: str, *, secure: bool) -> None:
    """``cookie`` (a Set-Cookie value) is ``name``, HttpOnly, SameSite=Strict, for the whole
    host only (no Domain, Path=/), and Secure exactly when served over TLS."""
    attributes = {a.strip().partition("=")[0].lower() for a in cookie.split(";")[1:]}
    assert cookie.startswith(f"{name}=")
    assert "httponly" in attributes
    assert "samesite=strict" in cookie.lower()
    # Plain HTTP: a Secure cookie would never come back. Over TLS: the __Host- rules.
    assert ("secure" in attributes) is secure
    assert "domain" not in attributes
    assert "path=/;" in cookie.lower() + ";"


@pytest.mark.parametrize(
    ("base", "name", "secure"),
    [("http://testserver.local", COOKIE, False), ("https://testserver.local", TLS_COOKIE, True)],
)
def test_a_page_hands_out_a_token_in_a_strict_httponly_cookie(
    client: Client, base: str, name: str, secure: bool
) -> None:
    task_id = submit(client, {"n": 1})
    response = client.get(f"{base}/dashboard/tasks/{task_id}")
    assert_strict_cookie(response.headers["set-cookie"], name, secure=secure)
    token = _TOKEN.search(response.text)
    assert token is not None
    assert client.cookies[name] == token.group(1)
    again = client.get(f"{base}/dashboard/tasks/{task_id}")
    assert "set-cookie" not in again.headers  # one token per browser
    assert token.group(1) in again.text


def test_an_action_with_its_token_is_done(client: Client) -> None:
    task_id = submit(client, {"n": 1})
    token = token_of(client, task_id)
    response = client.post(
        f"/dashboard/tasks/{task_id}/cancel",
        data={FIELD: token},
        headers={**SAME_SITE, "Sec-Fetch-Site": "same-origin"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert status_of(client, task_id) == "CANCELLED"


@pytest.mark.parametrize(
    ("form", "headers", "why"),
    [
        ({}, SAME_SITE, "token"),
        ({FIELD: "x" * 43}, SAME_SITE, "token"),
        ({FIELD: "é" * 43}, SAME_SITE, "token"),
        ("own", {"Origin": "https://evil.example"}, "this site"),
        ("own", {"Origin": "null"}, "Origin"),
        ("own", {}, "Origin"),
        ("own", {**SAME_SITE, "Sec-Fetch-Site": "cross-site"}, "cross-site"),
        ("own", {**SAME_SITE, "Sec-Fetch-Site": "same-site"}, "same-site"),
    ],
)
def test_a_forged_action_is_refused_and_changes_nothing(
    client: Client, form: object, headers: dict[str, str], why: str
) -> None:
    task_id = submit(client, {"n": 1})
    token = token_of(client, task_id)
    data = {FIELD: token} if form == "own" else form
    response = client.post(f"/dashboard/tasks/{task_id}/cancel", data=data, headers=headers)
    assert response.status_code == 403
    assert why in response.text
    assert "content-security-policy" in response.headers
    assert status_of(client, task_id) == "PENDING"


def test_a_token_without_its_cookie_is_refused(client: Client) -> None:
    """The forger's case: it may know some token, never this browser's cookie."""
    task_id = submit(client, {"n": 1})
    token = token_of(client, task_id)
    client.cookies.clear()
    response = client.post(
        f"/dashboard/tasks/{task_id}/cancel", data={FIELD: token}, headers=SAME_SITE
    )
    assert response.status_code == 403
    assert status_of(client, task_id) == "PENDING"
