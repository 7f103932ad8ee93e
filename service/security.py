"""API keys and roles: a key is shown once at creation, only its sha256 is stored, and a
short prefix finds its row. Roles are ordered viewer < planner < admin."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.orm import Session

from service.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from service.models import ROLES, ApiKey, utcnow
from service.repo import keys as repo

Role = Literal["viewer", "planner", "admin"]
ROLE_RANK = {r: i for i, r in enumerate(ROLES)}
KEY_SCHEME = "gok"  # greenopt key; makes leaked keys easy to recognise (secret scanners)
PREFIX_CHARS = 8
SECRET_BYTES = 24  # 192 bits of randomness


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id, name and role."""

    key_id: int
    name: str
    role: str

    @property
    def label(self) -> str:
        return f"key:{self.name}#{self.key_id}"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key_text() -> tuple[str, str]:
    """(prefix, full key). The prefix is part of the key, so it reveals nothing extra."""
    prefix = secrets.token_hex(PREFIX_CHARS // 2)
    return prefix, f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}"


def _prefix_of(key: str) -> str | None:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_SCHEME or len(parts[1]) != PREFIX_CHARS:
        return None
    return parts[1]


def create_key(session: Session, *, role: str, name: str) -> tuple[ApiKey, str]:
    """A new key; the plaintext is returned here and never stored."""
    if role not in ROLE_RANK:
        raise InvalidInput(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    for _ in range(3):  # prefixes are random: retry the (astronomically rare) collision
        prefix, text = new_key_text()
        if repo.by_prefix(session, prefix) is None:
            return repo.add(session, name=name, role=role, prefix=prefix, sha256=digest(text)), text
    raise Conflict("could not draw a unique key prefix; try again")


def authenticate(session: Session, key: str | None) -> Principal:
    if not key:
        raise Unauthenticated("an API key is required (header X-API-Key or Authorization: Bearer)")
    prefix = _prefix_of(key.strip())
    row = repo.by_prefix(session, prefix) if prefix else None
    # compare digests in constant time even when the prefix matched nothing
    expected = row.sha256 if row is not None else "0" * 64
    if not hmac.compare_digest(expected, digest(key.strip())) or row is None:
        raise Unauthenticated("invalid API key")
    if row.revoked_at is not None:
        raise Unauthenticated("this API key has been revoked")
    return Principal(key_id=row.id, name=row.name, role=row.role)


def require_role(principal: Principal, role: str) -> None:
    if ROLE_RANK[principal.role] < ROLE_RANK[role]:
        raise Forbidden(f"this needs the {role} role; your key has {principal.role}")


def list_keys(session: Session) -> list[ApiKey]:
    return list(repo.list_all(session))


def revoke_key(session: Session, key_id: int) -> ApiKey:
    key = repo.get(session, key_id)
    if key is None or key.revoked_at is not None:
        raise NotFound(f"no active API key with id {key_id}")
    if key.role == "admin" and repo.count_active(session, "admin") <= 1:
        # without an admin key nobody could manage keys or data over HTTP any more
        raise Conflict("this is the last active admin key; create another admin key first")
    repo.revoke(session, key_id, utcnow())
    session.refresh(key)
    return key


def ensure_admin_key(session: Session, name: str = "bootstrap-admin") -> str | None:
    """Create an admin key when there is no active one; its plaintext, else None."""
    if repo.count_active(session, "admin") > 0:
        return None
    _, text = create_key(session, role="admin", name=name)
    return text
