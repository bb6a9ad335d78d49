"""Who may do what: 401 without a valid token, 403 for the wrong role; public routes stay public."""

from __future__ import annotations

import pytest

ROLES = ("service", "operator", "supervisor", "admin")
# (method, path, json body, roles allowed)
RULES = [
    ("POST", "/api/events", "EVENT", {"service"}),
    (
        "PUT",
        "/api/calls/1900.1/outcome",
        {"outcome": "guided"},
        {"service", "operator", "supervisor", "admin"},
    ),
    ("GET", "/api/calls/1900.1", None, {"operator", "supervisor", "admin"}),
    ("GET", "/api/calls", None, {"operator", "supervisor", "admin"}),
    ("GET", "/api/harassment", None, {"admin"}),
    ("POST", "/api/harassment", {"number": "13900000000"}, {"admin"}),
    ("DELETE", "/api/harassment", {"number": "13900000000"}, {"admin"}),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "allowed"), RULES, ids=[f"{m} {p}" for m, p, _, _ in RULES]
)
async def test_roles(api, method, path, body, allowed) -> None:
    await api.post_events({"events": api.answered_call("1900.1")})
    if body == "EVENT":
        body = api.event("1900.1", "ringing", 3)
    for role in ROLES:
        status, resp = await api.call(method, path, role, json=body)
        if role in allowed:
            assert status in (200, 201), (role, resp)
        else:
            assert (status, resp["error_id"]) == (403, "forbidden"), role


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Bearer ", "Bearer nope", "Basic dXNlcjpwYXNz", "bearer lowercase"]
)
async def test_missing_or_bad_token_is_401(api, header) -> None:
    headers = {} if header is None else {"Authorization": header}
    for method, path, body, _ in RULES:
        status, resp = await api.call(method, path, None, json=body, headers=headers)
        assert (status, resp["error_id"]) == (401, "unauthorized"), (method, path)


async def test_public_routes(api) -> None:
    for path in ("/health", "/ready", "/api/openapi.json"):
        status, _ = await api.call("GET", path, None)
        assert status == 200, path
