"""What endpoints get injected: settings, sessions (one unit of work per request), the
runner, the caller's key checked against a role, uploaded tables, content negotiation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Query, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from service import security
from service.db import Database
from service.errors import UnsupportedMediaType
from service.runner import SolveRunner
from service.scenarios import UploadKind
from service.security import Principal
from service.settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_db(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


def get_runner(request: Request) -> SolveRunner:
    return request.app.state.runner  # type: ignore[no-any-return]


def _read_session(db: Annotated[Database, Depends(get_db)]) -> Iterator[Session]:
    with db.read() as s:
        yield s


def _write_session(db: Annotated[Database, Depends(get_db)]) -> Iterator[Session]:
    # scope="function": the commit happens before the response is sent, so a client that
    # got its 2xx can read what it wrote, and a failed commit becomes an error response
    with db.write() as s:
        yield s


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_db)]
RunnerDep = Annotated[SolveRunner, Depends(get_runner)]
ReadSession = Annotated[Session, Depends(_read_session, scope="function")]
WriteSession = Annotated[Session, Depends(_write_session, scope="function")]

_api_key = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="an API key (greenopt keys create)"
)
_bearer = HTTPBearer(auto_error=False, description="the same API key as a bearer token")


def _principal(
    request: Request,
    db: DatabaseDep,
    api_key: Annotated[str | None, Security(_api_key)] = None,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
) -> Principal:
    key = api_key or (bearer.credentials if bearer is not None else None)
    with db.read() as s:
        who = security.authenticate(s, key)
    request.state.principal = who  # for the request log line
    return who


def _role(role: str) -> Any:
    def check(who: Annotated[Principal, Depends(_principal)]) -> Principal:
        security.require_role(who, role)
        return who

    check.__name__ = f"require_{role}"
    return check


Viewer = Annotated[Principal, Depends(_role("viewer"))]
Planner = Annotated[Principal, Depends(_role("planner"))]
Admin = Annotated[Principal, Depends(_role("admin"))]

CSV_TYPES = {"text/csv", "application/csv"}
JSON_TYPES = {"application/json", ""}


async def table_upload(request: Request) -> tuple[UploadKind, bytes]:
    """The body of a table upload: a JSON array of rows, a CSV body, or a multipart form
    with the CSV (or JSON) in a field named `file`."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in CSV_TYPES or ctype == "text/plain":
        return "csv", await request.body()
    if ctype in JSON_TYPES or ctype.endswith("+json"):
        return "json", await request.body()
    if ctype == "multipart/form-data":
        form = await request.form()
        f = form.get("file")
        if isinstance(f, UploadFile):
            data = await f.read()
            name = (f.filename or "").lower()
            fct = (f.content_type or "").lower()
            return ("json" if name.endswith(".json") or fct == "application/json" else "csv"), data
        if isinstance(f, str):
            return "csv", f.encode()
        raise UnsupportedMediaType("multipart upload without a `file` field")
    raise UnsupportedMediaType(
        f"unsupported content type {ctype!r}: send application/json, text/csv or multipart/form-data"
    )


TableUploadDep = Annotated[tuple[UploadKind, bytes], Depends(table_upload)]
UploadFileName = Annotated[
    str, Query(min_length=1, max_length=200, description="named in every problem")
]
"""The name an uploaded document goes by in its problems (`?file_name=`)."""


def wants_csv(request: Request) -> bool:
    """Content negotiation between JSON (the default) and CSV, by the Accept header's
    q-values."""
    accept = request.headers.get("accept", "")
    best_csv, best_json = 0.0, 0.0
    for part in accept.split(","):
        fields = [f.strip() for f in part.split(";")]
        media, q = fields[0].lower(), 1.0
        for f in fields[1:]:
            if f.startswith("q="):
                try:
                    q = float(f[2:])
                except ValueError:
                    q = 0.0
        if media in CSV_TYPES:
            best_csv = max(best_csv, q)
        elif media in ("application/json", "application/*"):
            best_json = max(best_json, q)
    return best_csv > 0 and best_csv > best_json


WantsCsv = Annotated[bool, Depends(wants_csv)]
