"""The OpenAPI 3.1 document served at ``/api/openapi.json``, generated from the route table.

Each path and method comes from the aiohttp router; bodies, query parameters and answers from the
pydantic models the view declares with ``@endpoint`` (the same ones it validates with); path
parameters from their shared type (:data:`app.endpoint.PATH_PARAMS`); who may call it from the
view's roles. The error ids come from the error classes: every :class:`~app.errors.ApiError`
subclass, every ``FlowError`` of the call flows and every routing input error, each listed under the
statuses of the routes that may answer it and all together in ``components.schemas.ErrorId``.
"""

from __future__ import annotations

import inspect
from typing import Any

from aiohttp import web
from pydantic import BaseModel, TypeAdapter

from app.auth import PUBLIC, QUERY_TOKEN_ATTR, QUERY_TOKEN_PARAM, ROLES_ATTR
from app.endpoint import PATH_PARAMS, Endpoint, spec_of
from app.errors import (
    REGISTRY,
    BodyTooLarge,
    Forbidden,
    InternalError,
    InvalidCallId,
    MalformedJson,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
)
from app.flows_api import FLOW_REFUSALS
from app.schemas import ErrorBody
from routing.errors import INPUT_ERRORS

REF = "#/components/schemas/{model}"
METHODS = ("get", "put", "post", "delete", "patch")


def flow_errors() -> dict[str, int]:
    """Every id (and status) a flow may refuse with: the refusal classes and their subclasses, wherever
    declared."""
    found: dict[str, int] = {}
    todo: list[type[Exception]] = list(FLOW_REFUSALS)
    while todo:
        cls = todo.pop()
        found[getattr(cls, "error_id")] = getattr(cls, "status")  # noqa: B009
        todo.extend(cls.__subclasses__())
    return found


def all_errors() -> dict[str, int]:
    """Every error id the server can answer, with its status."""
    return {**{k: c.status for k, c in REGISTRY.items()}, **flow_errors(), **INPUT_ERRORS}


class _Schemas:
    """Collects component schemas from models (validation mode: what a client sends or reads)."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def of(self, tp: Any) -> dict[str, Any]:
        schema = TypeAdapter(tp).json_schema(ref_template=REF)
        self.components.update(schema.pop("$defs", {}))
        if inspect.isclass(tp) and issubclass(tp, BaseModel):
            self.components[tp.__name__] = schema
            return {"$ref": REF.format(model=tp.__name__)}
        return schema


def _errors_of(spec: Endpoint, handler: Any, path: str) -> dict[str, int]:
    ids: dict[str, int] = {InternalError.error_id: InternalError.status}
    classes: list[type[Any]] = list(spec.errors)
    if getattr(handler, ROLES_ATTR, None) != PUBLIC:
        classes += [Unauthorized, Forbidden]
    if spec.body is not None:
        classes += [MalformedJson, ValidationFailed, UnsupportedMediaType, BodyTooLarge]
    if spec.query is not None or spec.websocket:
        classes.append(ValidationFailed)
    if "{linkedid}" in path:
        classes.append(InvalidCallId)
    ids.update({c.error_id: c.status for c in classes})
    if "flows" in spec.passes_on:
        ids.update(flow_errors())
    if "routing" in spec.passes_on:
        ids.update(INPUT_ERRORS)
    return ids


def _parameters(spec: Endpoint, handler: Any, resource: Any, schemas: _Schemas) -> list[dict[str, Any]]:
    params = [{"name": name, "in": "path", "required": True, "schema": schemas.of(PATH_PARAMS[name])}
              for name in _path_names(resource)]
    if spec.query is not None:
        model_schema = TypeAdapter(spec.query).json_schema(ref_template=REF)
        schemas.components.update(model_schema.pop("$defs", {}))
        required = set(model_schema.get("required", ()))
        for name, prop in model_schema.get("properties", {}).items():
            params.append({"name": name, "in": "query", "required": name in required, "schema": prop})
    if getattr(handler, QUERY_TOKEN_ATTR, False):
        params.append({"name": QUERY_TOKEN_PARAM, "in": "query", "required": False,
                       "description": "the bearer token (browsers cannot set headers on a WebSocket)",
                       "schema": {"type": "string"}})
    return params


def _path_names(resource: Any) -> list[str]:
    info = resource.get_info()
    if "formatter" not in info:
        return []
    return [part[1:-1] for part in info["formatter"].split("/") if part.startswith("{")]


def _operation(handler: Any, resource: Any, schemas: _Schemas) -> dict[str, Any]:
    spec = spec_of(handler) or Endpoint(
        summary=(inspect.getdoc(handler) or handler.__name__.replace("_", " ")).splitlines()[0])
    path = resource.canonical
    op: dict[str, Any] = {"summary": spec.summary, "operationId": f"{handler.__module__}.{handler.__name__}"}
    rule = getattr(handler, ROLES_ATTR, None)
    if rule == PUBLIC:
        op["security"] = []
    else:
        op["x-roles"] = sorted(rule or ())
    params = _parameters(spec, handler, resource, schemas)
    if params:
        op["parameters"] = params
    if spec.body is not None:
        op["requestBody"] = {"required": not spec.body_optional,
                             "content": {"application/json": {"schema": schemas.of(spec.body)}}}
    ok: dict[str, Any] = {"description": "switching to WebSocket" if spec.websocket else "done"}
    if spec.response is not None:
        ok["content"] = {"application/json": {"schema": schemas.of(spec.response)}}
    responses: dict[str, Any] = {str(spec.status): ok}
    for status, text in spec.extra_statuses.items():
        responses[str(status)] = {**ok, "description": text}
    by_status: dict[int, list[str]] = {}
    for error_id, status in _errors_of(spec, handler, path).items():
        by_status.setdefault(status, []).append(error_id)
    for status, ids in sorted(by_status.items()):
        responses[str(status)] = {
            "description": " | ".join(sorted(ids)), "x-error-ids": sorted(ids),
            "content": {"application/json": {"schema": {"$ref": REF.format(model="ErrorBody")}}}}
    op["responses"] = responses
    return op


def openapi_document(app: web.Application) -> dict[str, Any]:
    schemas = _Schemas()
    schemas.of(ErrorBody)
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes():
        method = route.method.lower()
        if method not in METHODS or route.resource is None:
            continue
        paths.setdefault(route.resource.canonical, {})[method] = _operation(route.handler, route.resource,
                                                                             schemas)
    errors = all_errors()
    schemas.components["ErrorId"] = {"type": "string", "enum": sorted(errors),
                                     "description": "every error id the server can answer"}
    schemas.components["ErrorBody"]["properties"]["error_id"] = {"$ref": REF.format(model="ErrorId")}
    return {
        "openapi": "3.1.0",
        "info": {"title": "12345 / 110 hotline API", "version": "1",
                 "description": "Generated from the route table and the pydantic models."},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.components.items())),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "x-error-ids": {k: {"status": v} for k, v in sorted(errors.items())},
    }
