"""The response stores: kept across reopening, bounded by age and size, safe under concurrency,
each response its owner's. The same tests run on SQLiteResponseStore and on RedisResponseStore
(a real redis-server), with the same fake clock; what only one of them has is tested apart."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from opencode_openai.core.errors import StoreUnavailable
from opencode_openai.core.settings import GatewayConfig, Secret
from opencode_openai.store import (
    RedisLimits,
    RedisResponseStore,
    ResponseStore,
    SQLiteResponseStore,
    StoredResponse,
    open_store,
    open_stores,
)
from opencode_openai.store.redis import connect
from tests.support.redis_server import RedisServer


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


OWNER = "alice"


#: A store of the test's implementation: (max_age_s, max_bytes, clock) -> a store. Two made in
#: one test are the same store reopened (SQLite: the same file; Redis: the same prefix).
MakeStore = Callable[..., ResponseStore]


@pytest.fixture(params=["sqlite", "redis"])
async def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MakeStore]:
    made: list[ResponseStore] = []
    prefix = f"test-{uuid.uuid4().hex}"
    server: RedisServer | None = (
        request.getfixturevalue("redis_server") if request.param == "redis" else None
    )

    def make(
        *, max_age_s: float = 3600, max_bytes: int = 10**6, clock: Any = time.time
    ) -> ResponseStore:
        store: ResponseStore
        if server is None:
            store = SQLiteResponseStore(
                tmp_path / "r.sqlite3", max_age_s=max_age_s, max_bytes=max_bytes, clock=clock
            )
        else:
            store = RedisResponseStore(
                connect(server.url),
                max_age_s=max_age_s,
                max_bytes=max_bytes,
                prefix=prefix,
                clock=clock,
            )
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


def stored(response_id: str, created_at: float, text: str = "x") -> StoredResponse:
    return StoredResponse(
        response_id,
        created_at,
        {"id": response_id, "output": [{"text": text}]},
        [{"type": "message", "id": f"msg_{response_id}"}],
        [{"type": "message", "id": f"msg_{response_id}"}, {"text": text}],
        OWNER,
    )


async def test_put_get_delete_and_reopen(make_store: MakeStore) -> None:
    store = make_store()
    first = stored("resp_1", time.time(), "é ✓")
    await store.put(first)
    assert await store.get("resp_1", OWNER) == first
    assert await store.get("resp_none", OWNER) is None
    await store.close()
    again = make_store()  # SQLite: after a restart; Redis: on another replica
    assert await again.get("resp_1", OWNER) == first
    assert await again.delete("resp_1", OWNER) is True
    assert await again.delete("resp_1", OWNER) is False
    assert await again.get("resp_1", OWNER) is None


async def test_expired_responses_are_gone(make_store: MakeStore) -> None:
    clock = Clock()
    store = make_store(max_age_s=60, clock=clock)
    await store.put(stored("old", clock.now))
    await store.put(stored("fresh", clock.now + 30))
    clock.now += 61
    assert await store.get("old", OWNER) is None
    assert await store.delete("old", OWNER) is False
    assert await store.get("fresh", OWNER) is not None
    await store.put(stored("gone-already", clock.now - 61))  # past its age: not kept
    assert await store.get("gone-already", OWNER) is None


async def test_sqlite_deletes_expired_rows_at_the_next_write(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "r.sqlite3"
    store = SQLiteResponseStore(path, max_age_s=60, max_bytes=10**6, clock=clock)
    await store.put(stored("old", clock.now))
    clock.now += 61
    assert await store.get("old", OWNER) is None
    await store.put(stored("new", clock.now))
    await store.close()
    with sqlite3.connect(path) as db:
        assert [row[0] for row in db.execute("SELECT id FROM responses")] == ["new"]


async def test_past_the_size_bound_the_oldest_go(make_store: MakeStore) -> None:
    clock = Clock()
    one = len(
        '{"response":{"id":"r0","output":[{"text":"'
        + "a" * 1000
        + '"}]},"input_items":[{"type":"message","id":"msg_r0"}],'
        '"conversation":[{"type":"message","id":"msg_r0"},{"text":"' + "a" * 1000 + '"}]}'
    )
    store = make_store(max_bytes=3 * one + 10, clock=clock)
    for i in range(5):
        clock.now += 1
        await store.put(stored(f"r{i}", clock.now, "a" * 1000))
    kept = [i for i in range(5) if await store.get(f"r{i}", OWNER) is not None]
    assert kept == [2, 3, 4]
    await store.put(stored("huge", clock.now, "b" * (4 * one)))  # larger than the bound
    assert await store.get("huge", OWNER) is None and await store.get("r4", OWNER) is not None
    await store.put(stored("r2", clock.now, "a" * 1000))  # stored again: its old size is gone
    assert [i for i in range(5) if await store.get(f"r{i}", OWNER)] == [2, 3, 4]


async def test_concurrent_requests_are_safe(make_store: MakeStore) -> None:
    store = make_store(max_bytes=10**7)
    created = time.time()
    await asyncio.gather(*(store.put(stored(f"r{i}", created, str(i))) for i in range(100)))
    found = await asyncio.gather(*(store.get(f"r{i}", OWNER) for i in range(100)))
    assert [f.response["output"][0]["text"] for f in found if f] == [str(i) for i in range(100)]
    deleted = await asyncio.gather(*(store.delete(f"r{i}", OWNER) for i in range(0, 100, 2)))
    assert all(deleted)
    assert sum([await store.get(f"r{i}", OWNER) is not None for i in range(100)]) == 50


async def test_open_stores_names_redis_for_a_redis_url(tmp_path: Path) -> None:
    config = GatewayConfig(state_dir=tmp_path, store=Secret("redis://127.0.0.1:9/0"))
    responses, limits = open_stores(config)
    assert isinstance(responses, RedisResponseStore) and isinstance(limits, RedisLimits)
    with pytest.raises(StoreUnavailable):  # nobody listens there: a 503, not a 500
        await responses.get("resp_1", OWNER)
    await responses.close()


def test_open_store_puts_it_in_the_state_dir_unless_told(tmp_path: Path) -> None:
    config = GatewayConfig(state_dir=tmp_path, response_store_max_mb=5)
    store = open_store(config)
    assert isinstance(store, SQLiteResponseStore)
    assert store.path == tmp_path / "responses.sqlite3" and store.max_bytes == 5 * 1024 * 1024
    other = open_store(GatewayConfig(state_dir=tmp_path, response_store_file=tmp_path / "x.db"))
    assert isinstance(other, SQLiteResponseStore) and other.path == tmp_path / "x.db"


async def test_a_response_is_its_owners_only(make_store: MakeStore) -> None:
    store = make_store()
    mine = stored("resp_mine", time.time())
    await store.put(mine)
    assert await store.get("resp_mine", "bob") is None
    assert await store.delete("resp_mine", "bob") is False
    assert await store.get("resp_mine", OWNER) == mine  # bob's delete left it
    assert await store.delete("resp_mine", OWNER) is True


async def test_a_database_from_before_owners_gets_the_column(tmp_path: Path) -> None:
    """An earlier version's table has no owner: its rows stay every key's, new rows have one."""
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE responses (id TEXT PRIMARY KEY, created_at REAL NOT NULL, "
        "size INTEGER NOT NULL, body TEXT NOT NULL);"
    )
    body = '{"response": {"id": "resp_old"}, "input_items": [], "conversation": []}'
    old.execute(
        "INSERT INTO responses VALUES (?, ?, ?, ?)", ("resp_old", time.time(), len(body), body)
    )
    old.commit()
    old.close()
    store = SQLiteResponseStore(path, max_age_s=3600, max_bytes=10**6)
    found = await store.get("resp_old", "anyone")
    assert found is not None and found.owner == "" and found.response == {"id": "resp_old"}
    await store.put(stored("resp_new", time.time()))
    assert await store.get("resp_new", "anyone") is None
    assert await store.get("resp_new", OWNER) is not None
    await store.close()


async def test_redis_keeps_its_byte_count_when_redis_expired_a_response_first(
    redis_server: RedisServer,
) -> None:
    """Redis drops an expired response itself (its TTL), before the store's next write looks:
    the store's count of bytes must still lose that response's size, or the bound would
    shrink for good."""
    clock, prefix = Clock(), f"test-{uuid.uuid4().hex}"
    client = connect(redis_server.url)
    store = RedisResponseStore(client, max_age_s=60, max_bytes=10**6, prefix=prefix, clock=clock)
    await store.put(stored("early", clock.now, "a" * 500))
    await store.put(stored("later", clock.now + 30, "b" * 500))
    await client.delete(f"{prefix}:resp:early")  # as its TTL does, at 60 s
    clock.now += 61
    await store.put(stored("new", clock.now, "c" * 500))
    await store.delete("later", OWNER)
    sizes = await client.hgetall(f"{prefix}:resp-size")  # type: ignore[misc]
    assert list(sizes) == ["new"]
    assert int(await client.get(f"{prefix}:resp-bytes")) == int(sizes["new"]) > 500
    await store.close()
