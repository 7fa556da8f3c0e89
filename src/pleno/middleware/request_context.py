"""Outermost middleware: request id, standard response headers, the last-resort 500, access log.

Pure ASGI rather than BaseHTTPMiddleware: it costs a few microseconds instead of a task per
request, and handlers run in the same context, so they see ``current_request_id``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from typing import TYPE_CHECKING

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pleno.api.errors import problem
from pleno.context import current_request_id

if TYPE_CHECKING:
    from pleno.readiness import Readiness

# Client ids are echoed into headers and logs: accept only short, printable, unambiguous ones.
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

access_logger = logging.getLogger("pleno.access")
logger = logging.getLogger(__name__)


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, readiness: Readiness) -> None:
        self.app = app
        self.readiness = readiness

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        token = current_request_id.set(request_id)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = request_id
                headers["X-Content-Type-Options"] = "nosniff"
                if self.readiness.draining:
                    # Move keep-alive clients off this process before it stops accepting, so
                    # no request is sent on a connection that is about to be closed.
                    headers["Connection"] = "close"
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except asyncio.CancelledError:
            # Only a forced shutdown cancels a request; 499 (client closed request, as nginx
            # logs it) keeps it apart from server errors in the access log.
            status = 499
            raise
        except Exception:
            logger.exception("unhandled error")
            if response_started:
                raise
            response = problem(500, "internal server error; quote the request id when reporting")
            await response(scope, receive, send_with_headers)
        finally:
            duration_ms = round((time.perf_counter() - started) * 1000)
            access_logger.info("%s %s %d %dms", scope["method"], scope["path"], status, duration_ms)
            current_request_id.reset(token)


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate: str = value.decode("latin-1")
            if _VALID_REQUEST_ID.fullmatch(candidate):
                return candidate
            break
    return uuid.uuid4().hex
