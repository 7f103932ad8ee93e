"""/keys: API keys (admin only)."""

from __future__ import annotations

from fastapi import APIRouter, Path, Response

from service import security
from service.api.deps import Admin, ReadSession, WriteSession
from service.api.schemas import KeyCreate, KeyCreatedOut, KeyList, KeyOut, errors

router = APIRouter(prefix="/keys", tags=["keys"], responses=errors(401, 403))


@router.post("", status_code=201, response_model=KeyCreatedOut, responses=errors(422))
def create_key(body: KeyCreate, session: WriteSession, who: Admin) -> KeyCreatedOut:
    """Create a key; the response holds the key itself, shown this once."""
    key, text = security.create_key(session, role=body.role, name=body.name or body.role)
    return KeyCreatedOut(**KeyOut.of(key).model_dump(), key=text)


@router.get("", response_model=KeyList)
def list_keys(session: ReadSession, who: Admin) -> KeyList:
    """Active keys (never the keys themselves)."""
    return KeyList(items=[KeyOut.of(k) for k in security.list_keys(session)])


@router.delete("/{key_id}", status_code=204, response_class=Response, responses=errors(404, 409))
def revoke_key(
    session: WriteSession, who: Admin, key_id: int = Path(ge=1, le=2**31 - 1)
) -> Response:
    """Revoke a key at once. The last active admin key cannot be revoked."""
    security.revoke_key(session, key_id)
    return Response(status_code=204)
