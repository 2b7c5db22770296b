"""SQLiteResponseStore: stored responses in an SQLite database, bounded by age and size.

One table, one row per response: its id, when it was created, its size, its owner (the name
of the key that created it; a database from before owners gets the column, its rows owner "")
and its JSON. The
database is in WAL mode and survives a restart of the gateway. Every statement runs on one
thread of the store's own (so the event loop never waits on the disk, and concurrent
requests are serialised there). Bounds: a response older than `max_age_s` is gone (not read,
and deleted at the next write); when the rows pass `max_bytes` in all, the oldest are deleted
until they fit. A response larger than the whole bound is not kept (logged).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from opencode_openai.store.base import StoredResponse, body_within, from_body

__all__ = ["SQLiteResponseStore"]


T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    size INTEGER NOT NULL,
    body TEXT NOT NULL,
    owner TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS responses_by_age ON responses (created_at);
"""
#: A response of owner "" (stored before owners) is every key's; any other, its owner's only.
_OWNED = "owner IN (?, '')"


class SQLiteResponseStore:
    def __init__(
        self,
        path: Path,
        *,
        max_age_s: float,
        max_bytes: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.max_age_s = max_age_s
        self.max_bytes = max_bytes
        self._clock = clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="response-store")
        self._db: sqlite3.Connection | None = None
        self._bytes = 0  # the size of all rows, kept as rows come and go

    # -- the one thread ------------------------------------------------------------------

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, lambda: work(self._connection())
        )

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=5000")
            db.executescript(_SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(responses)")}
            if "owner" not in columns:  # a database of an earlier version
                db.execute("ALTER TABLE responses ADD COLUMN owner TEXT NOT NULL DEFAULT ''")
            self._db = db
            self._bytes = self._total(db)
        return self._db

    @staticmethod
    def _total(db: sqlite3.Connection) -> int:
        return int(db.execute("SELECT COALESCE(SUM(size), 0) FROM responses").fetchone()[0])

    def _oldest_kept(self) -> float:
        return self._clock() - self.max_age_s

    def _expire(self, db: sqlite3.Connection) -> None:
        cutoff = self._oldest_kept()
        gone = db.execute(
            "SELECT COALESCE(SUM(size), 0), COUNT(*) FROM responses WHERE created_at < ?",
            (cutoff,),
        ).fetchone()
        if gone[1]:
            db.execute("DELETE FROM responses WHERE created_at < ?", (cutoff,))
            self._bytes -= int(gone[0])

    def _evict(self, db: sqlite3.Connection, room: int) -> None:
        """Delete the oldest rows until `room` more bytes fit."""
        while self._bytes + room > self.max_bytes:
            oldest = db.execute(
                "SELECT id, size FROM responses ORDER BY created_at LIMIT 64"
            ).fetchall()
            if not oldest:
                return
            for response_id, size in oldest:
                db.execute("DELETE FROM responses WHERE id = ?", (response_id,))
                self._bytes -= int(size)
                if self._bytes + room <= self.max_bytes:
                    return

    # -- the interface -------------------------------------------------------------------

    async def put(self, stored: StoredResponse) -> None:
        kept = body_within(stored, self.max_bytes)
        if kept is None:
            return
        body, size = kept

        def write(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            try:
                self._expire(db)
                previous = db.execute(
                    "SELECT size FROM responses WHERE id = ?", (stored.id,)
                ).fetchone()
                if previous is not None:
                    db.execute("DELETE FROM responses WHERE id = ?", (stored.id,))
                    self._bytes -= int(previous[0])
                self._evict(db, size)
                db.execute(
                    "INSERT INTO responses (id, created_at, size, body, owner) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (stored.id, stored.created_at, size, body, stored.owner),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                self._bytes = self._total(db)
                raise
            self._bytes += size

        await self._run(write)

    async def get(self, response_id: str, owner: str) -> StoredResponse | None:
        def read(db: sqlite3.Connection) -> tuple[float, str, str] | None:
            row = db.execute(
                "SELECT created_at, body, owner FROM responses "
                f"WHERE id = ? AND created_at >= ? AND {_OWNED}",
                (response_id, self._oldest_kept(), owner),
            ).fetchone()
            return None if row is None else (float(row[0]), str(row[1]), str(row[2]))

        found = await self._run(read)
        if found is None:
            return None
        created_at, body, stored_owner = found
        return from_body(response_id, created_at, body, stored_owner)

    async def delete(self, response_id: str, owner: str) -> bool:
        def remove(db: sqlite3.Connection) -> bool:
            row = db.execute(
                f"SELECT size, created_at FROM responses WHERE id = ? AND {_OWNED}",
                (response_id, owner),
            ).fetchone()
            if row is None:
                return False
            db.execute("DELETE FROM responses WHERE id = ?", (response_id,))
            self._bytes -= int(row[0])
            return float(row[1]) >= self._oldest_kept()  # an expired one was already gone

        return await self._run(remove)

    async def close(self) -> None:
        def shut(db: sqlite3.Connection) -> None:
            db.close()
            self._db = None

        if self._db is not None:
            await self._run(shut)
        self._executor.shutdown(wait=True)
