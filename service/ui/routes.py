"""The /ui routes: the page, its static files, and `/ui/whoami`, which tells the page the
role of the key it was given (the page shows what the role may do; the API still checks
every call)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from service.api.deps import Viewer
from service.api.schemas import errors
from service.security import ROLE_RANK

STATIC = Path(__file__).parent / "static"
UI_PATH = "/ui"

router = APIRouter(prefix=UI_PATH, tags=["dashboard"])


class WhoAmIOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "ops-team", "role": "planner", "can_plan": True}]}
    )
    name: str = Field(description="the key's name")
    role: str = Field(description="viewer | planner | admin")
    can_plan: bool = Field(
        description="may run what-ifs and sweeps and activate plans (planner or admin)"
    )


@router.get("", include_in_schema=False)
def page() -> FileResponse:
    # no-cache: a new release's page must not pair with old cached scripts
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/", include_in_schema=False)
def slash() -> RedirectResponse:
    return RedirectResponse(UI_PATH)


@router.get("/whoami", response_model=WhoAmIOut, responses=errors(401))
def whoami(who: Viewer) -> WhoAmIOut:
    """The caller's key: its name and role, and what the dashboard may offer it."""
    can_plan = ROLE_RANK[who.role] >= ROLE_RANK["planner"]
    return WhoAmIOut(name=who.name, role=who.role, can_plan=can_plan)


def install_ui(app: FastAPI) -> None:
    app.include_router(router)
    app.mount(f"{UI_PATH}/static", StaticFiles(directory=STATIC), name="ui-static")
