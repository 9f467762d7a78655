"""One contract for every KeyStore: the file store and the Redis store (a real Redis)."""

from __future__ import annotations

import asyncio
import os
import stat
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gateway.auth.api_keys import issue_key
from gateway.auth.key_store import FileKeyStore, KeyStore, RedisKeyStore
from gateway.auth.oauth_clients import issue_client
from gateway.errors import ServiceUnavailable
from gateway.stores import connect_redis

Factory = Callable[[], KeyStore]


@pytest.fixture(params=["file", "redis"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Factory:
    """Each call is a separate 'process' view of the same backing store."""
    if kind == "file":
        return lambda: FileKeyStore(tmp_path / "data" / "credentials.json")
    server = request.getfixturevalue("redis_server")
    return lambda: RedisKeyStore(connect_redis(server.url))


async def _close(*stores: KeyStore) -> None:
    for s in stores:
        await s.close()
        if isinstance(s, RedisKeyStore):
            await s.redis.aclose()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_put_get_list_and_other_view_sees_it(make_store):
    async def go() -> None:
        a, b = make_store(), make_store()
        await a.refresh()
        await b.refresh()
        _, record = issue_key("demo", name="n", scopes=("sentiment",), expires_in=60)
        await a.put_key(record)
        assert a.key(record.key_id) == record  # the writer sees its write at once
        assert b.key(record.key_id) is None  # the other view: not before its refresh
        assert await b.refresh() is True
        assert b.key(record.key_id) == record
        assert await b.refresh() is False  # unchanged: nothing reloaded
        secret, client = issue_client("demo", ("sentiment",))
        await b.put_client(client)
        await a.refresh()
        assert a.client(client.client_id) == client
        assert a.client(client.client_id).check_client_secret(secret)
        assert [r.key_id for r in a.list_keys()] == [record.key_id]
        assert [c.client_id for c in a.list_clients()] == [client.client_id]
        await _close(a, b)

    run(go())


def test_revocation_replaces_record_and_no_update_is_lost(make_store):
    async def go() -> None:
        a, b = make_store(), make_store()
        await a.refresh()
        await b.refresh()
        _, one = issue_key("demo")
        _, two = issue_key("demo")
        # Two writers from stale snapshots: both changes survive.
        await asyncio.gather(a.put_key(one), b.put_key(two))
        await a.put_key(replace(one, revoked=time.time()))
        await b.refresh()
        assert b.key(one.key_id).state(time.time()) == "revoked"
        assert b.key(two.key_id).state(time.time()) == "active"
        assert len(b.list_keys()) == 2
        await _close(a, b)

    run(go())


def test_staleness_grows_only_without_successful_checks(make_store):
    async def go() -> None:
        s = make_store()
        await s.refresh()
        assert s.stale_for(time.monotonic()) < 0.5
        assert s.stale_for(time.monotonic() + 100) > 99
        await _close(s)

    run(go())


def test_file_store_is_private_and_atomic(tmp_path):
    store = FileKeyStore(tmp_path / "data" / "credentials.json")
    _, record = issue_key("demo")
    run(store.put_key(record))
    mode = stat.S_IMODE(os.stat(store.path).st_mode)
    assert mode == 0o600
    assert stat.S_IMODE(os.stat(store.path.parent).st_mode) == 0o700
    assert record.secret_hash.hex() in store.path.read_text()
    assert not list(store.path.parent.glob(".*.tmp"))  # temp file renamed away


def test_redis_outage_keeps_snapshot_and_reports(redis_server):
    async def go() -> None:
        s = RedisKeyStore(connect_redis(redis_server.url))
        _, record = issue_key("demo")
        await s.put_key(record)
        redis_server.stop()
        try:
            with pytest.raises(ServiceUnavailable):
                await s.refresh()
            assert s.key(record.key_id) == record  # last good snapshot kept
            assert s.stale_for(time.monotonic()) > 0
        finally:
            redis_server.start()
        # This throwaway Redis keeps nothing on disk: back, empty, and seen as such.
        assert await s.refresh() is True
        assert s.key(record.key_id) is None and s.stale_for(time.monotonic()) < 0.5
        await _close(s)

    run(go())
