"""API keys on the first day of use (issue 10, row 15): keys expire with a 401 that says so,
`greenopt keys list` / `revoke` exist, and every creation and revocation leaves a structured
log line naming who did it and the role, never the key. The API over a real server, the CLI
against a real database, each on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from service import security
from service.cli import app as cli
from service.db import Database
from service.errors import Unauthenticated
from service.logs import JsonFormatter
from service.models import ApiKey, utcnow
from tests.service.helpers import BACKENDS, LiveServer, fresh_database

LOGGER = "greenopt.keys"


def key_log(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    """The key log lines as the JSON formatter writes them."""
    return [json.loads(JsonFormatter().format(r)) for r in caplog.records if r.name == LOGGER]


def _expire_now(url: str, key_id: int) -> None:
    """The clock moves past the key's expiry (set it to a moment ago)."""
    db = Database(url)
    try:
        with db.write() as s:
            past = utcnow() - dt.timedelta(seconds=1)
            s.execute(update(ApiKey).where(ApiKey.id == key_id).values(expires_at=past))
    finally:
        db.dispose()


# ----------------------------------------------------------------------------- API
def test_an_expired_key_gets_a_401_saying_so(
    server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=LOGGER), server.client("admin") as admin:
        me = next(k for k in admin.get("/keys").json()["items"] if k["name"] == "test-admin")
        label = f"key:test-admin#{me['id']}"
        r = admin.post("/keys", json={"role": "viewer", "name": "temp", "expires_in": "30d"})
        assert r.status_code == 201, r.text
        made = r.json()
        expires = dt.datetime.fromisoformat(made["expires_at"])
        assert abs(expires - (utcnow() + dt.timedelta(days=30))) < dt.timedelta(minutes=1)
        assert (made["state"], made["created_by"]) == ("active", label)
        with server.client(None, headers={"X-API-Key": made["key"]}) as temp:
            assert temp.get("/data").status_code == 200
            _expire_now(server.settings.database_url, made["id"])
            r = temp.get("/data")
            assert r.status_code == 401, r.text
            assert "expired" in r.json()["message"]
        active = {k["id"] for k in admin.get("/keys").json()["items"]}
        assert made["id"] not in active
        everything = admin.get("/keys", params={"include_inactive": True}).json()["items"]
        assert [k["state"] for k in everything if k["id"] == made["id"]] == ["expired"]
        r = admin.delete(f"/keys/{made['id']}")  # an expired key can still be revoked
        assert r.status_code == 204
        for bad in (
            {"expires_in": "30x"},
            {"expires_in": "999999w"},  # beyond the longest lifetime
            {"expires_at": "2000-01-01T00:00:00Z"},
            {"expires_at": "2030-01-01T00:00:00"},  # no offset
            {"expires_in": "1d", "expires_at": "2030-01-01T00:00:00Z"},
        ):
            r = admin.post("/keys", json={"role": "viewer", **bad})
            assert r.status_code == 422, (bad, r.text)
    lines = [x for x in key_log(caplog) if x["key_id"] == made["id"]]
    assert [x["event"] for x in lines] == ["api_key_created", "api_key_revoked"]
    assert all(x["actor"] == label and x["role"] == "viewer" for x in lines)
    assert not any(made["key"] in json.dumps(x) for x in key_log(caplog))


# ----------------------------------------------------------------------------- CLI
@pytest.mark.parametrize("backend", BACKENDS)
def test_keys_cli_lists_revokes_and_expires(
    backend: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Before: only `keys create`, no way to see or revoke a key, nothing logged."""
    url = fresh_database(backend, tmp_path, "keys_cli")
    monkeypatch.setenv("GREENOPT_DATABASE_URL", url)
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        r = runner.invoke(cli, ["keys", *args])
        assert r.exit_code == code, r.output
        return r.output

    with caplog.at_level(logging.INFO, logger=LOGGER):
        run("create", "--role", "admin", "--name", "ops")
        out = run("create", "--role", "viewer", "--name", "dash", "--expires-in", "2w")
        secret = out.strip().splitlines()[-1]
        prefix = secret.split("_")[1]
        listed = run("list")
        assert prefix in listed and "dash" in listed and "viewer" in listed
        assert (utcnow() + dt.timedelta(weeks=2)).date().isoformat() in listed
        assert secret not in listed
        assert "revoked viewer key" in run("revoke", prefix)
        assert prefix not in run("list")
        assert prefix in run("list", "--all") and "revoked" in run("list", "--all")
        assert "no active API key" in run("revoke", prefix, code=2)
        assert "last active admin key" in run("revoke", "1", code=2)
        assert "not in the future" in run(
            "create", "--role", "viewer", "--expires-at", "2000-01-01T00:00Z", code=2
        )
        assert "expires_in" in run("create", "--role", "viewer", "--expires-in", "3x", code=2)
        assert "no API key" in run("revoke", "ffffffff", code=2)
    db = Database(url)
    try:
        with db.read() as s, pytest.raises(Unauthenticated, match="revoked"):
            security.authenticate(s, secret)
    finally:
        db.dispose()
    lines = key_log(caplog)
    assert [(x["event"], x["role"]) for x in lines] == [
        ("api_key_created", "admin"),
        ("api_key_created", "viewer"),
        ("api_key_revoked", "viewer"),
    ]
    assert all(str(x["actor"]).startswith("cli") for x in lines)
    assert not any(secret in json.dumps(x) for x in lines)
