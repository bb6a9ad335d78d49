"""The generated OpenAPI document: valid OpenAPI 3.1, every route of the router with its parameters
and bodies, and every error id the code can raise listed (read from the source, not from the
registry the document itself uses)."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from app.factory import create_app
from app.openapi import openapi_document
from hotline.secrets import Secrets
from hotline.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return create_app(Settings(state_dir=tmp_path_factory.mktemp("state")), Secrets("x", {}, {}))


@pytest.fixture(scope="module")
def doc(app: Any) -> dict[str, Any]:
    return openapi_document(app)


def test_the_document_is_valid_openapi(doc: dict[str, Any]) -> None:
    validate(doc)  # type: ignore[arg-type]
    assert doc["openapi"] == "3.1.0"


def test_every_route_is_documented_with_its_parameters(app: Any, doc: dict[str, Any]) -> None:
    seen = 0
    for route in app.router.routes():
        if route.method in ("HEAD", "OPTIONS"):
            continue
        path = route.resource.canonical
        op = doc["paths"][path][route.method.lower()]
        params = {(p["in"], p["name"]) for p in op.get("parameters", [])}
        for name in re.findall(r"{(\w+)}", path):
            assert ("path", name) in params, (path, name)
        assert op["summary"] and "500" in op["responses"]
        seen += 1
    assert seen == sum(len(ops) for ops in doc["paths"].values())
    calls = doc["paths"]["/api/calls"]["get"]
    assert {p["name"] for p in calls["parameters"]} >= {"since", "until", "service", "seat", "outcome",
                                                      "limit", "offset"}
    spy = doc["paths"]["/api/calls/{linkedid}/spy"]["post"]
    body = doc["components"]["schemas"]["SpyBody"]
    assert spy["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/SpyBody")
    assert body["additionalProperties"] is False and body["required"] == ["supervisor"]
    live = doc["paths"]["/api/live"]["get"]
    assert "access_token" in {p["name"] for p in live["parameters"]}


def _raised_ids() -> set[str]:
    """Every error id literal in the product: ``error_id = "..."`` in a class, and the ids handed to
    the errors that carry one (RoutingInputError, PassedOn)."""
    ids: set[str] = set()
    for package in ("app", "call_flows", "routing"):
        for file in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ClassDef):
                    for stmt in node.body:
                        if not isinstance(stmt, ast.Assign):
                            continue
                        for target in stmt.targets:
                            names = [target] if isinstance(target, ast.Name) else getattr(target, "elts", [])
                            values = [stmt.value] if isinstance(target, ast.Name) else \
                                getattr(stmt.value, "elts", [])
                            for n, v in zip(names, values, strict=False):
                                if isinstance(n, ast.Name) and n.id == "error_id" and \
                                        isinstance(v, ast.Constant) and isinstance(v.value, str):
                                    ids.add(v.value)
                elif isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("RoutingInputError",
                                                                                     "PassedOn"):
                    # the id is RoutingInputError's first argument, PassedOn's second
                    arg = node.args[0 if node.func.id == "RoutingInputError" else 1]  # type: ignore[attr-defined]
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        ids.add(arg.value)
    return ids - {"route.bad_rules"}  # a rules file's error, answered as route.reload_failed


def test_every_error_id_the_code_raises_is_listed(doc: dict[str, Any]) -> None:
    listed = set(doc["components"]["schemas"]["ErrorId"]["enum"])
    raised = _raised_ids()
    assert len(raised) > 30
    assert raised <= listed, sorted(raised - listed)
    assert set(doc["x-error-ids"]) == listed
    error_body = doc["components"]["schemas"]["ErrorBody"]
    assert error_body["properties"]["error_id"] == {"$ref": "#/components/schemas/ErrorId"}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for status, answer in op["responses"].items():
                assert set(answer.get("x-error-ids", ())) <= listed, (path, method, status)
