"""`create_app(settings)`: the FastAPI application. The lifespan owns the database engine,
this process's row in `instances` (its heartbeat) and the solve runner; a pure-ASGI
middleware gives every request an id (X-Request-ID in and out), enforces the body size
limit (413), refuses a malformed JSON body (400 `malformed_body`, naming what is wrong)
before any route parses it, logs one JSON line per request and counts it for Prometheus."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api import actions, data, feeds, keys, ops, plans, queue, runs, schedule, whatif
from service.api.docs import install_docs
from service.api.schemas import errors
from service.bootstrap import first_plan_status, prepare_database
from service.db import Database
from service.errors import (
    MalformedBody,
    error_body,
    install_error_handlers,
    internal_error_body,
    request_problem,
)
from service.instances import InstanceHeartbeat
from service.json_body import malformed_json
from service.logs import request_id_var
from service.metrics import Metrics
from service.runner import make_runner
from service.settings import Settings
from service.ui import install_ui

log = logging.getLogger("greenopt.http")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")  # what we accept from a client
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# bodies up to this size are checked on the event loop; larger ones in a thread (a 5 MB
# upload takes ~0.5 s to check), so a big upload does not hold up every other request
_CHECK_INLINE_BYTES = 64 * 1024


def _is_json(headers: Headers) -> bool:
    """Whether the routes read this body as JSON (FastAPI and the table uploads take a
    body without a content type as JSON too)."""
    ctype = headers.get("content-type", "").split(";")[0].strip().lower()
    return ctype in ("", "application/json") or (
        ctype.startswith("application/") and ctype.endswith("+json")
    )


DESCRIPTION = """\
Energy-aware placement of GPU workloads across datacenters.

Authenticate with an API key in `X-API-Key` (or `Authorization: Bearer <key>`). Roles:
**viewer** reads, **planner** also solves and activates plans, **admin** also changes
scenario data and keys. Errors share one shape (`ErrorOut`); a 422 lists every problem
with its table, row, column and hour.
"""


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a streamed body passes the limit. An HTTPException, so
    FastAPI's body parsing lets it through instead of turning it into a 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


class _Exchange:
    """One request as the middleware tracks it: its id, the response status and the body bytes read."""

    def __init__(self, rid: str, receive: Receive, send: Send, max_body_bytes: int) -> None:
        self.rid = rid
        self._receive = receive
        self._send = send
        self.max_body = max_body_bytes
        self.status, self.started, self.received = 500, False, 0

    async def send(self, message: Message) -> None:
        """Pass a message to the client, noting the status and stamping the request id."""
        if message["type"] == "http.response.start":
            self.started, self.status = True, int(message["status"])
            MutableHeaders(scope=message)["X-Request-ID"] = self.rid
        await self._send(message)

    async def receive(self) -> Message:
        """Take a message from the client, counting body bytes against the limit."""
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.max_body:
                raise BodyTooLarge(self.max_body)
        return message

    async def reply(self, code: int, body: dict[str, Any]) -> None:
        """Answer with a JSON body, unless the app has already started its response."""
        if self.started:
            return
        await self.send(
            {
                "type": "http.response.start",
                "status": code,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await self.send({"type": "http.response.body", "body": json.dumps(body).encode()})


class RequestMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, metrics: Metrics) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Give each HTTP request an id, a body-size limit, JSON checks, error bodies and a log line."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        given = headers.get("x-request-id", "")
        rid = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        token = request_id_var.set(rid)
        t0 = time.perf_counter()
        ex = _Exchange(rid, receive, send, self.max_body)
        try:
            await self._dispatch(scope, headers, ex)
        except BodyTooLarge as exc:
            await ex.reply(413, error_body("payload_too_large", str(exc.detail), rid))
        except Exception:
            log.exception("unhandled error")
            await ex.reply(500, internal_error_body(rid))
        finally:
            self._log_request(scope, ex, time.perf_counter() - t0)
            request_id_var.reset(token)

    async def _dispatch(self, scope: Scope, headers: Headers, ex: _Exchange) -> None:
        """Refuse an oversized or malformed body, else hand the request to the app."""
        rid = ex.rid
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body:
            # refuse before reading a byte of it
            await ex.reply(
                413,
                error_body(
                    "payload_too_large", f"request body larger than {self.max_body} bytes", rid
                ),
            )
        elif scope["method"] in _BODY_METHODS and _is_json(headers):
            receive_checked = await self._checked_json(ex.receive)
            if isinstance(receive_checked, MalformedBody):
                await ex.reply(
                    receive_checked.status_code,
                    error_body(
                        receive_checked.code,
                        receive_checked.message,
                        rid,
                        receive_checked.problems,
                    ),
                )
            else:
                await self.app(scope, receive_checked, ex.send)
        else:
            await self.app(scope, ex.receive, ex.send)

    def _log_request(self, scope: Scope, ex: _Exchange, seconds: float) -> None:
        """Log the finished request and count it in the metrics by route template."""
        status = ex.status
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        who = scope.get("state", {}).get("principal")
        log.info(
            "%s %s %s",
            scope["method"],
            scope["path"],
            status,
            extra={
                "request_id": ex.rid,
                "method": scope["method"],
                "path": scope["path"],
                "route": template,
                "status": status,
                "duration_ms": round(seconds * 1000, 2),
                "bytes_in": ex.received,
                "client": (scope.get("client") or ("", 0))[0],
                "key": getattr(who, "label", None),
            },
        )
        self.metrics.observe_request(scope["method"], template, status, seconds)

    @staticmethod
    async def _checked_json(receive: Receive) -> Receive | MalformedBody:
        """Read the whole body (the size limit applies as it streams in) and check it as
        JSON: MalformedBody naming the fault, or a `receive` that hands the app the body."""
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client left: let the app see it
                return receive
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if body:
            fault = (
                malformed_json(body)
                if len(body) <= _CHECK_INLINE_BYTES
                else await run_in_threadpool(malformed_json, body)
            )
            if fault is not None:
                return MalformedBody(fault, problems=[request_problem(None, fault)])
        replay: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive_replayed() -> Message:
            return replay.pop() if replay else await receive()

        return receive_replayed


def _document_malformed_bodies(app: FastAPI) -> None:
    """Every operation that takes a body may answer 400 malformed_body: say so in the OpenAPI
    document (derived from the document itself, so a new route is covered without a line
    of its own)."""
    build = app.openapi
    [(code, entry)] = errors(400).items()
    answer = {
        "description": entry["description"],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}},
    }

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            for operations in build()["paths"].values():
                for op in operations.values():
                    if "requestBody" in op:
                        op["responses"].setdefault(str(code), answer)
        return build()  # the document cached by the first call, with the answers added

    app.openapi = openapi  # type: ignore[method-assign]


FIRST_PLAN_POLL_S = 1.0
SCHEDULER_START_RETRY_S = 5.0


def _after_first_plan(
    db: Database, first_run_id: int | None, stopping: threading.Event, then: Callable[[], None]
) -> None:
    """Call `then` once the first plan's run has finished (at once without one), and again
    until it succeeds, unless the app stops first."""
    while first_run_id is not None and not stopping.is_set():
        try:
            with db.read() as s:
                if first_plan_status(s, first_run_id)[0]:
                    break
        except Exception:  # a database hiccup: look again
            log.exception("could not read the first plan's run")
        stopping.wait(FIRST_PLAN_POLL_S)
    while not stopping.is_set():
        try:
            then()
            return
        except Exception:  # a database hiccup must not leave the service without its nightly
            log.exception(
                "the nightly scheduler did not start; trying again in %.0f s",
                SCHEDULER_START_RETRY_S,
            )
        stopping.wait(SCHEDULER_START_RETRY_S)


def _lifespan(
    settings: Settings, metrics: Metrics, first_run_id: int | None
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start-up and shut-down of one app: database, instance heartbeat, runner, scheduler."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.database_url)
        await run_in_threadpool(prepare_database, db, settings)
        instance = await run_in_threadpool(InstanceHeartbeat(db, settings, kind="api").start)
        runner = make_runner(settings, db, instance_id=instance.id)
        app.state.db, app.state.runner, app.state.instance = db, runner, instance
        metrics.bind(db, runner.queue_depth, getattr(runner, "collect_metrics", None))
        interrupted, resubmitted = await run_in_threadpool(runner.start)
        log.info(
            "ready: %s runs interrupted, %s re-queued",
            len(interrupted),
            len(resubmitted),
            extra={"interrupted": interrupted, "requeued": resubmitted},
        )
        nightly_scheduler, starter, stopping = None, None, threading.Event()
        if settings.scheduler_in_process:
            # embedded mode: one API process, so one scheduler (docs/service.md)
            from service.scheduler import NightlyScheduler

            nightly_scheduler = NightlyScheduler(settings, db, runner, instance=instance)
            # a night warm-starts from the active plan: the first one comes first (a night
            # due meanwhile fires late, within the misfire grace time)
            starter = threading.Thread(
                target=_after_first_plan,
                args=(db, first_run_id, stopping, nightly_scheduler.start),
                name="scheduler-start",
                daemon=True,
            )
            starter.start()
        try:
            yield
        finally:
            stopping.set()
            if starter is not None:
                await run_in_threadpool(starter.join, 60)
            if nightly_scheduler is not None:
                await run_in_threadpool(nightly_scheduler.shutdown)
            await run_in_threadpool(runner.shutdown)
            await run_in_threadpool(instance.stop)
            db.dispose()

    return lifespan


def create_app(settings: Settings | None = None, *, first_run_id: int | None = None) -> FastAPI:
    """The application for `settings` (default: from the environment). `first_run_id`: the
    run solving the first plan (`greenopt serve`), queued already; /readyz answers 503 with
    its progress until it has finished."""
    settings = settings or Settings()
    metrics = Metrics()
    app = FastAPI(
        title="greenopt",
        version=ops.VERSION,
        description=DESCRIPTION,
        lifespan=_lifespan(settings, metrics, first_run_id),
        docs_url=None,  # install_docs serves both pages from local assets
        redoc_url=None,
        openapi_tags=[
            {"name": "runs", "description": "ask for a plan; follow and cancel runs"},
            {
                "name": "what-if",
                "description": "what a change would do, against a base plan; parameter sweeps",
            },
            {
                "name": "plans",
                "description": "stored plans, the active plan, explanations, diffs, bundles",
            },
            {"name": "data", "description": "the scenario: tables, policy, versions"},
            {"name": "keys", "description": "API keys (admin)"},
            {"name": "schedule", "description": "the nightly re-optimisation and its history"},
            {"name": "operations", "description": "health, readiness, metrics"},
        ],
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.first_run_id = first_run_id
    install_docs(app)
    install_ui(app)
    install_error_handlers(app)
    for r in (
        runs.router,
        whatif.router,
        plans.router,
        actions.router,
        queue.router,
        feeds.router,
        data.router,
        keys.router,
        schedule.router,
        ops.router,
    ):
        app.include_router(r)
    _document_malformed_bodies(app)
    app.add_middleware(
        RequestMiddleware, max_body_bytes=settings.max_request_bytes, metrics=metrics
    )
    return app
