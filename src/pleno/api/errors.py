"""One error shape for every response: RFC 9457 problem details, carrying the request id.

A client mistake is always a 4xx, the database being unreachable is a 503, and anything
unexpected is a generic 500; no response ever carries a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException

from pleno.context import current_request_id
from pleno.db.engine import is_unavailable
from pleno.services.items import DuplicateNameError, ItemNotFoundError

PROBLEM_JSON = "application/problem+json"
DATABASE_RETRY_AFTER_S = 5

logger = logging.getLogger(__name__)


def status_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:  # valid on the wire but unregistered, such as 599
        return f"HTTP {status}"


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_JSON


def problem(
    status: int,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> ProblemResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": status_phrase(status),
        "status": status,
        "detail": detail,
        "request_id": current_request_id.get(),
        **extensions,
    }
    return ProblemResponse(body, status_code=status, headers=headers)


class ProblemError(Exception):
    """Raise from a handler to answer with a problem response (extensions become members)."""

    def __init__(self, status: int, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.extensions = extensions


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ProblemError, _problem_error)
    app.add_exception_handler(ItemNotFoundError, _not_found)
    app.add_exception_handler(DuplicateNameError, _duplicate)
    for error_type in (sa_exc.DBAPIError, sa_exc.TimeoutError, OSError, TimeoutError):
        app.add_exception_handler(error_type, _database_error)


async def _http_exception(request: Request, error: Exception) -> ProblemResponse:
    assert isinstance(error, HTTPException)  # noqa: S101 - type narrowing
    detail = error.detail if isinstance(error.detail, str) else status_phrase(error.status_code)
    return problem(error.status_code, detail, headers=error.headers)


async def _validation_error(request: Request, error: Exception) -> ProblemResponse:
    assert isinstance(error, RequestValidationError)  # noqa: S101 - type narrowing
    errors = [
        {"field": ".".join(str(part) for part in item["loc"]), "message": item["msg"]}
        for item in error.errors()
    ]
    fields = ", ".join(entry["field"] for entry in errors)
    return problem(422, f"invalid request: {fields}", errors=errors)


async def _problem_error(request: Request, error: Exception) -> ProblemResponse:
    assert isinstance(error, ProblemError)  # noqa: S101 - type narrowing
    return problem(error.status, error.detail, **error.extensions)


async def _not_found(request: Request, error: Exception) -> ProblemResponse:
    return problem(404, str(error))


async def _duplicate(request: Request, error: Exception) -> ProblemResponse:
    return problem(409, str(error))


async def _database_error(request: Request, error: Exception) -> ProblemResponse:
    if not is_unavailable(error):
        raise error  # a bug, not an outage: the request-context middleware answers 500
    logger.warning("database unavailable: %s: %s", type(error).__name__, error)
    return problem(
        503,
        "the database is unavailable; retry later",
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
    )
