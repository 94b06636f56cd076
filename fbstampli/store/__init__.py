"""The encrypted state store: one SQLCipher file that is the source of truth.

Opening checks the key before anything writes, so a wrong key can never turn
the old file into a new empty one. Transactions are `BEGIN IMMEDIATE`, so a
decision is committed before the side effect it causes. Only this package
imports sqlcipher3; its exceptions never escape it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlcipher3

from fbstampli.clock import Clock, to_utc_text
from fbstampli.errors import ConfigError, StateUnusableError, TemporaryError
from fbstampli.paths import Paths, file_place_problem, out_of_room
from fbstampli.store.damage import damage_of, damaged, key_fits_first_page
from fbstampli.store.files import fix_mode, replace_state, statements, translate
from fbstampli.store.keys import StateKey
from fbstampli.store.schema import MIGRATIONS, latest_version

log = logging.getLogger(__name__)

__all__ = [
    "Row",
    "Store",
    "integrity_problems_of",
    "open_state",
    "replace_state",
]

BUSY_TIMEOUT_SECONDS = 30.0
ITERATE_BATCH = 500  # rows `Store.iterate` fetches at a time
Row = sqlite3.Row


class Store:
    """A connection to the state file, with the few queries every layer shares.

    One connection may be used from two threads (a listing read ahead in a worker
    refreshes the token or records what FreshBooks was seen to do there), so a
    transaction holds `_lock` from BEGIN to COMMIT: another thread's statements and
    transactions wait for it instead of landing inside it, where a rollback would
    undo them (a spent refresh token with it).
    """

    def __init__(self, connection: Any, path: Path, clock: Clock) -> None:
        self._db = connection
        self._lock = threading.RLock()
        self.path = path
        self.clock = clock
        self._damage: str | None = None  # set once a damaged page was met; see _translated

    # -- opening -----------------------------------------------------------

    @classmethod
    def create(cls, path: Path, key: StateKey, clock: Clock) -> Store:
        """Create a new state file (mode 0600); refuse if one exists already."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise ConfigError(f"{path} exists already; it is never replaced") from None
        os.close(fd)
        return cls.open(path, key, clock, new=True)

    @classmethod
    def open(cls, path: Path, key: StateKey, clock: Clock, *, new: bool = False) -> Store:
        """Open an existing state; only `create` (`new`) may start from an empty file."""
        if not path.exists():
            raise ConfigError(f"no state file at {path}; run `fbstampli init` first")
        why = None if new else damage_of(path)
        if why is not None:
            raise damaged(path, why)
        try:
            connection = sqlcipher3.connect(
                str(path),
                timeout=BUSY_TIMEOUT_SECONDS,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlcipher3.Error as error:
            raise translate(error, path) from None
        connection.row_factory = sqlcipher3.Row
        try:
            # Before the key, or SQLCipher prints its own hmac errors on a wrong key.
            connection.execute("PRAGMA cipher_log_level = NONE")
            connection.execute(f"PRAGMA key = \"x'{key.hex}'\"")
            # The first read is where a wrong key shows; nothing has been written yet.
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlcipher3.OperationalError as error:  # locked, a full or failing disk
            connection.close()
            raise translate(error, path) from None
        except sqlcipher3.DatabaseError:  # "file is not a database": the key does not fit
            connection.close()
            if key_fits_first_page(path, key.hex):  # ... or the file is cut short or damaged
                raise damaged(
                    path, "its first page opens with this key but the rest does not: cut short"
                ) from None
            raise StateUnusableError(
                f"{path} cannot be decrypted with the key from {key.source.value} "
                "(wrong key, or not an fbstampli state file); it was left unchanged: "
                "restore the right key or a backup"
            ) from None
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA foreign_keys = ON")
            connection.execute("PRAGMA synchronous = FULL")
        except sqlcipher3.Error as error:
            connection.close()
            raise StateUnusableError(f"{path} cannot be used ({error})") from None
        store = cls(connection, path, clock)
        store._migrate()
        fix_mode(path)
        return store

    def _migrate(self) -> None:
        current = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if current > latest_version():
            self.close()
            raise StateUnusableError(
                f"{self.path} was written by a newer fbstampli (schema {current}, "
                f"this one knows {latest_version()}); upgrade fbstampli"
            )
        for version in range(current + 1, latest_version() + 1):
            with self.transaction():
                for statement in statements(MIGRATIONS[version - 1]):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {version}")
            log.info("state schema migrated to version %d", version)

    def close(self) -> None:
        try:
            self._db.close()
        except sqlcipher3.Error:
            log.debug("closing the state store failed", exc_info=True)

    # -- transactions and queries -------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """`BEGIN IMMEDIATE`: take the write lock up front, commit or roll back whole.

        Nested in a transaction of the same thread, it joins that one; another
        thread's waits until that one is over (`_lock`).
        """
        with self._lock:
            if self._db.in_transaction:
                yield
                return
            self._refuse_if_damaged()
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlcipher3.OperationalError as error:
                raise translate(error, self.path) from None
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            try:
                self._db.execute("COMMIT")
            except sqlcipher3.OperationalError as error:
                raise translate(error, self.path) from None

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """The file's troubles (locked, full, damaged) become our errors; bugs stay bugs.

        A damaged page surfaces as a plain `DatabaseError` ("database disk image is
        malformed"), not an `OperationalError`; constraint and programming errors are
        `DatabaseError` subclasses too, but they are mistakes in our SQL and must
        reach the catch-all as the bugs they are.
        """
        self._refuse_if_damaged()
        try:
            yield
        except sqlcipher3.DatabaseError as error:
            if not isinstance(error, sqlcipher3.OperationalError) and (
                type(error) is not sqlcipher3.DatabaseError
            ):
                raise
            translated = translate(error, self.path)
            if "malformed" in str(error):
                self._damage = str(translated)
            raise translated from None

    def _refuse_if_damaged(self) -> None:
        """Once a damaged page was met, repeat that error rather than touch the connection.

        SQLite leaves the connection in an error state where even a later COMMIT
        fails oddly (MemoryError); a cleanup step such as finishing the run's
        bookkeeping must get the same clear error instead.
        """
        if self._damage is not None:
            raise StateUnusableError(self._damage)

    def execute(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> int:
        """Run one statement; return the new row id (inserts) or 0."""
        with self._lock, self._translated():
            cursor = self._db.execute(sql, params)
            return int(cursor.lastrowid or 0)

    def execute_many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        with self._lock, self._translated():
            self._db.executemany(sql, rows)

    def query(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[Row]:
        with self._lock, self._translated():
            return list(self._db.execute(sql, params).fetchall())

    def query_one(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> Row | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def iterate(self, sql: str, params: tuple[Any, ...] = ()) -> Iterator[Row]:
        """Stream rows of a large result without holding them all.

        The lock is held while a batch is fetched, never across a `yield`: a
        consumer that pauses mid-result must not keep another thread waiting.
        """
        with self._lock, self._translated():
            cursor = self._db.execute(sql, params)
        while True:
            with self._lock, self._translated():
                rows = cursor.fetchmany(ITERATE_BATCH)
            if not rows:
                return
            yield from rows

    def now_text(self) -> str:
        return to_utc_text(self.clock.now())

    # -- small shared tables ------------------------------------------------

    def get_value(self, name: str) -> str | None:
        row = self.query_one("SELECT value FROM kv WHERE name = ?", (name,))
        return None if row is None else str(row["value"])

    def put_value(self, name: str, value: str) -> None:
        self.execute(
            "INSERT INTO kv (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    def delete_value(self, name: str) -> None:
        self.execute("DELETE FROM kv WHERE name = ?", (name,))

    def get_secret(self, name: str) -> str | None:
        row = self.query_one("SELECT value FROM credentials WHERE name = ?", (name,))
        return None if row is None else str(row["value"])

    def put_secret(self, name: str, value: str) -> None:
        self.execute(
            "INSERT INTO credentials (name, value, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value, "
            "updated_at = excluded.updated_at",
            (name, value, self.now_text()),
        )

    def delete_secret(self, name: str) -> None:
        self.execute("DELETE FROM credentials WHERE name = ?", (name,))

    def get_json(self, name: str) -> Any:
        text = self.get_value(name)
        return None if text is None else json.loads(text)

    def put_json(self, name: str, value: Any) -> None:
        self.put_value(name, json.dumps(value, sort_keys=True))

    def audit(
        self,
        action: str,
        *,
        kind: str | None = None,
        fb_id: int | None = None,
        detail: str = "",
        run_id: int | None = None,
    ) -> None:
        """Append one row to the audit trail; never updated, never deleted."""
        self.execute(
            "INSERT INTO audit (at, run_id, kind, fb_id, action, detail) VALUES (?, ?, ?, ?, ?, ?)",
            (self.now_text(), run_id, kind, fb_id, action, detail),
        )

    def audit_many(self, rows: list[tuple[Any, ...]]) -> None:
        """Append many audit rows at once: (at, run_id, kind, fb_id, action, detail)."""
        self.execute_many(
            "INSERT INTO audit (at, run_id, kind, fb_id, action, detail) VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )

    def integrity_problems(self) -> list[str]:
        """What `PRAGMA cipher_integrity_check` and `integrity_check` find; empty is healthy.

        Run it on a connection of its own (`integrity_problems_of`): once
        `integrity_check` meets a page that fails its HMAC, SQLite puts the
        connection in an error state, and every later read on it fails too.
        """
        problems: list[str] = []
        for pragma in ("cipher_integrity_check", "integrity_check"):
            try:
                rows = self._db.execute(f"PRAGMA {pragma}").fetchall()
            except sqlcipher3.DatabaseError as error:
                problems.append(f"{pragma}: {error}")
                continue
            problems.extend(f"{pragma}: {row[0]}" for row in rows if str(row[0]) != "ok")
        return problems

    def wait_for_writers(self, seconds: float) -> None:
        """How long a write waits for another process's transaction (30 s by default).

        The webhook listener answers FreshBooks, which gives up after about ten
        seconds; it would rather answer 503 soon (FreshBooks retries) than late.
        """
        self._db.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")

    def checkpoint(self) -> None:
        """Fold the WAL into the main file, so the file alone is the whole state."""
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def backup_to(self, destination: Path, key: StateKey, home: Paths | None = None) -> None:
        """Write an encrypted copy (same key) via SQLCipher's export, atomically.

        A destination that cannot be written (no such folder, a folder, no room)
        is the caller's to fix: one ConfigError naming it, and no half-written copy.
        """
        problem = file_place_problem(destination, home)
        if problem is not None:
            raise ConfigError(f"cannot write a backup to {destination}: {problem}")
        from fbstampli.atomic import fresh_temporary, replace_with

        temporary: Path | None = None
        try:
            temporary = fresh_temporary(destination)  # exclusive: never a planted link
            self._export(temporary, key)
            replace_with(temporary, destination)
        except (OSError, sqlcipher3.OperationalError) as error:
            if temporary is not None:
                with contextlib.suppress(OSError):
                    temporary.unlink(missing_ok=True)
            full = out_of_room(error) if isinstance(error, OSError) else "full" in str(error)
            if full:
                raise TemporaryError(
                    f"cannot write a backup to {destination}: the disk is full; "
                    "free some space and run it again"
                ) from None
            reason = error.strerror if isinstance(error, OSError) else str(error)
            raise ConfigError(
                f"cannot write a backup to {destination} ({reason}); choose another place"
            ) from None

    def _export(self, temporary: Path, key: StateKey) -> None:
        self._db.execute(f"ATTACH DATABASE ? AS backup KEY \"x'{key.hex}'\"", (str(temporary),))
        try:
            self._db.execute("SELECT sqlcipher_export('backup')")
            version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            self._db.execute(f"PRAGMA backup.user_version = {version}")
        finally:
            self._db.execute("DETACH DATABASE backup")


def open_state(
    path: Path, env: Mapping[str, str], clock: Clock, *, recover: bool = True
) -> tuple[Store, StateKey]:
    """Open the state with its recorded key, finishing an interrupted key rotation.

    A rotation stages the new key before re-keying; if the run died, the file
    opens with exactly one of the two keys, and that one is kept.
    """
    from fbstampli.store.keys import discard_pending_key, pending_key, promote_key, resolve_key

    key = resolve_key(path, env)
    staged = pending_key(path, key.source)
    if staged is None:
        return Store.open(path, key, clock), key
    # A rotation is under way, or a killed one left this: only a holder of the run
    # lock (`recover`) may finish or undo it; a lock-free reader just tries both keys.
    try:
        store = Store.open(path, key, clock)
    except StateUnusableError:
        store = Store.open(path, staged, clock)
        if recover:
            promote_key(path, staged)
            log.warning("finished an interrupted key rotation: the new key is now in use")
        return store, staged
    if recover:
        discard_pending_key(path, key.source)
        path.with_name(f"{path.name}.rotating").unlink(missing_ok=True)
        log.warning("an interrupted key rotation had not replaced the state; the old key stays")
    return store, key


def integrity_problems_of(path: Path, key: StateKey, clock: Clock) -> list[str]:
    """Check the state file on a connection of its own, closed afterwards.

    A damaged page found here then cannot break the connection the rest of the
    command goes on using (see `Store.integrity_problems`).
    """
    store = Store.open(path, key, clock)
    try:
        return store.integrity_problems()
    finally:
        store.close()
