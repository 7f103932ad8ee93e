"""Typed domain errors and their one mapping to HTTP: service code raises these (never
`HTTPException`), and `install_error_handlers` turns each into a status and a JSON body of
the same shape, `ErrorOut`, whatever raised it."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from optimizer.scenario import InputValidationError
from optimizer.scenario import schema as scenario_schema
from optimizer.whatif import FILE as OVERRIDES_FILE

log = logging.getLogger("greenopt.errors")

_TABLE_OF_FILE = {t.file: t.name for t in scenario_schema.TABLES} | {
    scenario_schema.MANIFEST_FILE: "manifest"
}


class DomainError(Exception):
    """Base of every error the service reports to a client."""

    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(self, message: str, *, problems: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems or []

    def headers(self) -> dict[str, str]:
        return {}


class MalformedBody(DomainError):
    """The request body cannot be read as JSON: not UTF-8, not JSON, a number out of
    range, nested too deep. The message says which and where."""

    status_code = 400
    code = "malformed_body"


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class InvalidInput(DomainError):
    """The request is well-formed but its content is wrong; `problems` lists every fault."""

    status_code = 422
    code = "invalid_input"


class ProblemTooLarge(InvalidInput):
    """The problem a request describes exceeds a size limit of the service; `problems`
    names each limit passed (setting, limit, actual size)."""

    code = "problem_too_large"


class Conflict(DomainError):
    status_code = 409
    code = "conflict"


class ConfirmationRequired(Conflict):
    """The change would remove most of a table; the client must say it means it. Each
    problem names the table and its row counts before and after."""

    code = "confirmation_required"


class Unauthenticated(DomainError):
    status_code = 401
    code = "unauthenticated"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="greenopt", header="X-API-Key"'}


class Forbidden(DomainError):
    status_code = 403
    code = "forbidden"


class PayloadTooLarge(DomainError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(DomainError):
    status_code = 415
    code = "unsupported_media_type"


class QueueFull(DomainError):
    """Too many runs queued or running; the client should come back later."""

    status_code = 429
    code = "queue_full"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class Unavailable(DomainError):
    status_code = 503
    code = "unavailable"


class PlanIntegrityError(DomainError):
    """A stored plan cannot be reproduced byte-for-byte: storage or code drifted."""

    status_code = 500
    code = "plan_integrity"


def problem_dicts(err: InputValidationError) -> list[dict[str, Any]]:
    """The optimizer's problems as JSON, each with the table its file belongs to."""
    out = []
    for p in err.problems:
        d = p.as_dict()
        # numpy integers sneak in from vectorised checks; JSON wants plain ints
        d["row"] = int(d["row"]) if d["row"] is not None else None
        d["table"] = _TABLE_OF_FILE.get(p.file, p.file)
        out.append(d)
    return out


def request_problem(column: str | None, message: str) -> dict[str, Any]:
    """A problem of the request body, in the shape of every 422 (`ProblemOut`)."""
    return {
        "file": "request",
        "table": "body",
        "row": None,
        "column": column,
        "hour": None,
        "message": message,
    }


def override_problems(err: InputValidationError) -> list[dict[str, Any]]:
    """The problems of applying a request's `overrides`: those of the overrides at their
    field path in the body (`overrides.price_changes[0].multiplier`), any other (a scenario
    table the overrides made invalid) as the optimizer names it."""
    out = []
    for p, d in zip(err.problems, problem_dicts(err), strict=True):
        if p.file == OVERRIDES_FILE:
            out.append(
                request_problem(f"overrides.{p.column}" if p.column else "overrides", p.message)
            )
        else:
            out.append(d)
    return out


def invalid_input(err: InputValidationError, message: str | None = None) -> InvalidInput:
    n = len(err.problems)
    return InvalidInput(message or f"{n} problem(s) in the input", problems=problem_dicts(err))


def internal_error_body(request_id: str | None) -> dict[str, Any]:
    """The body of a 500: no internals, the request id to find the traceback in the log.
    The request middleware sends it (it sits inside Starlette's last-resort handler, so it
    can still add the request id header)."""
    return error_body("internal_error", "internal error; see the server log", request_id)


def error_body(
    code: str, message: str, request_id: str | None, problems: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """`ErrorOut` as a dict: every error response of the service has this shape."""
    body: dict[str, Any] = {"error": code, "message": message}
    if problems:
        body["problems"] = problems
    if request_id:
        body["request_id"] = request_id
    return body


def _rid(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def _request_problems(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for e in exc.errors():
        loc = [str(x) for x in e.get("loc", ())]
        where = loc[0] if loc else "request"
        out.append(
            {
                "file": "request",
                "table": where,
                "row": None,
                "column": ".".join(loc[1:]) or None,
                "hour": None,
                "message": str(e.get("msg", "invalid")),
            }
        )
    return out


def install_error_handlers(app: FastAPI) -> None:
    """The one place where errors become HTTP responses."""

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        if exc.status_code >= 500:
            log.error("%s: %s", exc.code, exc.message)
        return JSONResponse(
            error_body(exc.code, exc.message, _rid(request), exc.problems),
            status_code=exc.status_code,
            headers=exc.headers(),
        )

    @app.exception_handler(InputValidationError)
    async def _input(request: Request, exc: InputValidationError) -> JSONResponse:
        err = invalid_input(exc)
        return JSONResponse(
            error_body(err.code, err.message, _rid(request), err.problems), status_code=422
        )

    @app.exception_handler(RequestValidationError)
    async def _request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = _request_problems(exc)
        return JSONResponse(
            error_body(
                InvalidInput.code,
                f"{len(problems)} problem(s) in the request",
                _rid(request),
                problems,
            ),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # routing errors (404 unknown path, 405 wrong method) in the same shape as ours
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code, "http_error"
        )
        return JSONResponse(
            error_body(code, str(exc.detail), _rid(request)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )
