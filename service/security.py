"""API keys and roles: a key is shown once at creation, only its sha256 is stored, and a
short prefix finds its row. Roles are ordered viewer < planner < admin. A key may expire;
every creation and revocation is logged (who, which key and role; never the key)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.orm import Session

from service.db import on_commit
from service.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from service.models import ROLES, ApiKey, utcnow
from service.repo import keys as repo

log = logging.getLogger("greenopt.keys")

Role = Literal["viewer", "planner", "admin"]
ROLE_RANK = {r: i for i, r in enumerate(ROLES)}
KEY_SCHEME = "gok"  # greenopt key; makes leaked keys easy to recognise (secret scanners)
PREFIX_CHARS = 8
SECRET_BYTES = 24  # 192 bits of randomness
KeyState = Literal["active", "expired", "revoked"]
# a key's lifetime as text, e.g. "30d": a number and a unit (minutes, hours, days, weeks)
EXPIRES_IN_PATTERN = r"^\s*[0-9]{1,6}\s*[mhdw]\s*$"
_UNIT = {"m": dt.timedelta(minutes=1), "h": dt.timedelta(hours=1), "d": dt.timedelta(days=1)}
_UNIT["w"] = 7 * _UNIT["d"]
# longer than any sensible key lifetime; it keeps a typo (300000d) from meaning "forever"
MAX_KEY_LIFETIME = dt.timedelta(days=3653)


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


def expiry(
    expires_in: str | None, expires_at: dt.datetime | None, *, now: dt.datetime
) -> dt.datetime | None:
    """When a new key expires: `expires_in` ("30d") from `now`, or the instant
    `expires_at`; None when neither is given."""
    if expires_in is not None and expires_at is not None:
        raise InvalidInput("give expires_in or expires_at, not both")
    if expires_in is not None:
        m = re.fullmatch(EXPIRES_IN_PATTERN, expires_in)
        if m is None:
            raise InvalidInput(
                f"expires_in {expires_in!r}: a number and a unit m, h, d or w, e.g. 30d"
            )
        text = expires_in.strip()
        lifetime = int(text[:-1]) * _UNIT[text[-1]]
        if lifetime > MAX_KEY_LIFETIME:  # checked before adding: 999999w passes year 9999
            raise InvalidInput(f"a key lives at most {MAX_KEY_LIFETIME.days} days")
        expires_at = now + lifetime
    if expires_at is None:
        return None
    if expires_at.tzinfo is None:
        raise InvalidInput("expires_at needs a UTC offset, e.g. 2026-01-31T00:00:00Z")
    if expires_at <= now:
        raise InvalidInput(f"expires_at {expires_at.isoformat()} is not in the future")
    if expires_at - now > MAX_KEY_LIFETIME:
        raise InvalidInput(f"a key lives at most {MAX_KEY_LIFETIME.days} days")
    return expires_at.astimezone(dt.UTC)


def key_state(key: ApiKey, now: dt.datetime | None = None) -> KeyState:
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= (now or utcnow()):
        return "expired"
    return "active"


def create_key(
    session: Session,
    *,
    role: str,
    name: str,
    actor: str,
    expires_at: dt.datetime | None = None,
) -> tuple[ApiKey, str]:
    """A new key made by `actor`; the plaintext is returned here and never stored."""
    if role not in ROLE_RANK:
        raise InvalidInput(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    for _ in range(3):  # prefixes are random: retry the (astronomically rare) collision
        prefix, text = new_key_text()
        if repo.by_prefix(session, prefix) is None:
            key = repo.add(
                session,
                name=name,
                role=role,
                prefix=prefix,
                sha256=digest(text),
                created_by=actor,
                expires_at=expires_at,
            )
            _log_on_commit(session, "created", key, actor)
            return key, text
    raise Conflict("could not draw a unique key prefix; try again")


def _log_on_commit(session: Session, what: str, key: ApiKey, actor: str) -> None:
    """One structured line once the change is committed: who did what to which key."""
    fields = {
        "event": f"api_key_{what}",
        "key_id": key.id,
        "key_prefix": key.prefix,
        "key_name": key.name,
        "role": key.role,
        "actor": actor,
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
    }
    on_commit(
        session,
        lambda: log.info(
            "API key #%s (%s, %s) %s by %s",
            fields["key_id"],
            fields["key_name"],
            fields["role"],
            what,
            actor,
            extra=fields,
        ),
    )


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
    if key_state(row) == "expired":
        assert row.expires_at is not None
        raise Unauthenticated(
            f"this API key expired at {row.expires_at.isoformat(timespec='seconds')}; "
            "ask an admin for a new one"
        )
    return Principal(key_id=row.id, name=row.name, role=row.role)


def require_role(principal: Principal, role: str) -> None:
    if ROLE_RANK[principal.role] < ROLE_RANK[role]:
        raise Forbidden(f"this needs the {role} role; your key has {principal.role}")


def list_keys(session: Session, *, include_inactive: bool = False) -> list[ApiKey]:
    """Active keys; with `include_inactive`, revoked and expired ones as well."""
    return list(repo.list_all(session, active_at=None if include_inactive else utcnow()))


def find_key(session: Session, ref: str) -> ApiKey:
    """A key by its prefix or its id (as the CLI takes either)."""
    ref = ref.strip().removeprefix("#")
    by_prefix = repo.by_prefix(session, ref.lower()) if len(ref) == PREFIX_CHARS else None
    by_id = repo.get(session, int(ref)) if ref.isdigit() and len(ref) <= 9 else None
    if by_prefix is not None and by_id is not None and by_prefix.id != by_id.id:
        raise Conflict(
            f"{ref!r} is the prefix of key #{by_prefix.id} and the id of another; "
            f"give #{ref} for the id"
        )
    key = by_prefix or by_id
    if key is None:
        raise NotFound(f"no API key with prefix or id {ref!r}")
    return key


def revoke_key(session: Session, key_id: int, *, actor: str) -> ApiKey:
    key = repo.get(session, key_id)
    if key is None or key.revoked_at is not None:
        raise NotFound(f"no active API key with id {key_id}")
    now = utcnow()
    last_admin = (
        key.role == "admin"
        and key_state(key, now) == "active"
        and repo.count_active(session, now, "admin") <= 1
    )
    if last_admin:
        # without an admin key nobody could manage keys or data over HTTP any more
        raise Conflict("this is the last active admin key; create another admin key first")
    repo.revoke(session, key_id, now, actor)
    session.refresh(key)
    _log_on_commit(session, "revoked", key, actor)
    return key


def ensure_admin_key(session: Session, name: str = "bootstrap-admin") -> str | None:
    """Create an admin key when there is no active one; its plaintext, else None."""
    if repo.count_active(session, utcnow(), "admin") > 0:
        return None
    _, text = create_key(session, role="admin", name=name, actor="bootstrap")
    return text
