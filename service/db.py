"""The database: engine, sessions and the transaction rules every caller follows.

SQLite (the embedded default) runs in WAL mode with a busy timeout, and a *write* session
starts with `BEGIN IMMEDIATE`: a deferred transaction that reads and then writes fails at
once with "database is locked" when another connection wrote in between, whereas an
immediate one waits its turn. Read sessions stay deferred so readers never queue behind
writers. PostgreSQL is reached through psycopg 3.

`on_commit(session, fn)` defers a side effect (handing a run to the runner) until the
transaction that made it visible has committed; a rollback drops it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger("greenopt.db")

SQLITE_BUSY_TIMEOUT_MS = 30_000  # a write waits this long for the lock before failing
_WRITE_OPTION = "greenopt_write"
_AFTER_COMMIT = "greenopt_after_commit"
# arbitrary constant: the PostgreSQL advisory lock that serialises start-up (migrations,
# bootstrap) across API replicas starting at the same time
STARTUP_LOCK_ID = 0x6772656E  # "gren"


def normalize_url(url: str) -> str:
    """Plain `postgresql://` URLs use psycopg 3 (the driver we ship), not psycopg2."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def create_private_file(path: Path) -> None:
    """Create `path` (and the folders it needs) readable by its owner only: the database
    holds key hashes, plans and costs. SQLite gives its -wal and -shm files the database
    file's mode. Existing folders and files keep theirs: the operator chose them."""
    path.parent.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, PRIVATE_FILE_MODE))


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            create_private_file(Path(u.database))
        engine = create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # take BEGIN out of pysqlite's hands so `_on_begin` chooses the kind of transaction
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")  # durable enough in WAL mode, much faster
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    """An engine and its two session factories. One per process (the API's lifespan, each
    solve worker)."""

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.engine = make_engine(self.url)
        self.dialect = self.engine.dialect.name
        # every transaction on `write_engine` writes: on SQLite it begins IMMEDIATE. Give it
        # to anything else that writes through this database (APScheduler's job store)
        self.write_engine: Engine = self.engine.execution_options(**{_WRITE_OPTION: True})
        self._read = sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        self._write = sessionmaker(self.write_engine, expire_on_commit=False, autoflush=False)
        event.listen(self._write, "after_commit", _run_after_commit)
        event.listen(self._write, "after_rollback", _drop_after_commit)

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading; nothing it does is committed. Closing (not rolling back)
        leaves loaded objects readable after the block."""
        with self._read() as s:
            yield s

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A unit of work: committed once if the block succeeds, rolled back otherwise."""
        with self._write() as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    @contextlib.contextmanager
    def startup_lock(self) -> Iterator[None]:
        """Serialise start-up work between processes sharing a PostgreSQL database."""
        if self.dialect != "postgresql":
            # SQLite is the single-process embedded mode; its writes are serialised anyway
            yield
            return
        with self.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": STARTUP_LOCK_ID})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": STARTUP_LOCK_ID})
                conn.commit()

    def dispose(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------------- migrations
    def upgrade(self, revision: str = "head") -> None:
        """Migrate the schema (Alembic, service/migrations) up to `revision`."""
        from alembic import command

        cfg = alembic_config(self.url)
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                # batch migrations copy and drop tables; enforcing foreign keys meanwhile
                # would reject that (the pragma only changes outside a transaction)
                conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
            try:
                with conn.begin():
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, revision)
            finally:
                if self.dialect == "sqlite":
                    conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()


MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Any:
    """Alembic's configuration in code, so `greenopt db upgrade` works from any directory."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # '%' is ConfigParser's interpolation character; URLs may contain it (escaped passwords)
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return cfg


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def on_commit(session: Session, fn: Callable[[], None]) -> None:
    """Call `fn` once `session`'s transaction has committed (never if it rolls back)."""
    session.info.setdefault(_AFTER_COMMIT, []).append(fn)


def _run_after_commit(session: Session) -> None:
    callbacks = session.info.pop(_AFTER_COMMIT, [])
    for fn in callbacks:
        try:
            fn()
        except Exception:  # a failed side effect must not turn a committed request into an error
            log.exception("after-commit callback failed")


def _drop_after_commit(session: Session) -> None:
    session.info.pop(_AFTER_COMMIT, None)
