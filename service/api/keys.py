"""/keys: API keys (admin only). Keys may expire; every creation and revocation is logged
with the admin key that did it."""

from __future__ import annotations

from fastapi import APIRouter, Path, Query, Response

from service import security
from service.api.deps import Admin, ReadSession, WriteSession
from service.api.schemas import KeyCreate, KeyCreatedOut, KeyList, KeyOut, errors
from service.models import utcnow

router = APIRouter(prefix="/keys", tags=["keys"], responses=errors(401, 403))


@router.post("", status_code=201, response_model=KeyCreatedOut, responses=errors(422))
def create_key(body: KeyCreate, session: WriteSession, who: Admin) -> KeyCreatedOut:
    """Create a key, optionally expiring (`expires_in`, e.g. `30d`, or `expires_at`); the
    response holds the key itself, shown this once."""
    expires_at = security.expiry(body.expires_in, body.expires_at, now=utcnow())
    key, text = security.create_key(
        session, role=body.role, name=body.name or body.role, actor=who.label, expires_at=expires_at
    )
    return KeyCreatedOut(**KeyOut.of(key).model_dump(), key=text)


@router.get("", response_model=KeyList)
def list_keys(
    session: ReadSession,
    who: Admin,
    include_inactive: bool = Query(False, description="also revoked and expired keys"),
) -> KeyList:
    """Active keys (never the keys themselves)."""
    keys = security.list_keys(session, include_inactive=include_inactive)
    return KeyList(items=[KeyOut.of(k) for k in keys])


@router.delete("/{key_id}", status_code=204, response_class=Response, responses=errors(404, 409))
def revoke_key(
    session: WriteSession, who: Admin, key_id: int = Path(ge=1, le=2**31 - 1)
) -> Response:
    """Revoke a key at once. The last active admin key cannot be revoked."""
    security.revoke_key(session, key_id, actor=who.label)
    return Response(status_code=204)
