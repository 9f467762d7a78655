"""`gateway keys export` / `import` (gateway/auth/backup.py) through the real CLI: from
the file store to a real Redis and back, with no secret in the file, re-imports that keep
what the store has (a revoked key stays revoked), and a bad file that changes nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import stat
import time
from pathlib import Path

import pytest

from gateway.auth.api_keys import issue_key, split_key, verify_key
from gateway.auth.key_store import KeyStore, open_key_store
from gateway.auth.oauth_clients import issue_client
from gateway.cli import main
from gateway.stores import connect_redis


def with_store(data_dir: Path, redis_url: str | None, action):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        redis = connect_redis(redis_url) if redis_url else None
        store: KeyStore = open_key_store(data_dir, redis)
        try:
            await store.refresh()
            return await action(store)
        finally:
            await store.close()
            if redis is not None:
                await redis.aclose()

    return asyncio.run(go())


def test_export_then_import_moves_every_credential(tmp_path: Path, redis_server,
                                                   monkeypatch: pytest.MonkeyPatch, capsys):
    data = tmp_path / "data"
    secret, key = issue_key("acme", name="ci")
    _, old = issue_key("acme", name="old")
    old = dataclasses.replace(old, revoked=time.time())
    client_secret, client = issue_client("acme", ("sentiment",), name="svc")

    async def seed(store: KeyStore) -> None:
        for record in (key, old):
            await store.put_key(record)
        await store.put_client(client)

    with_store(data, None, seed)
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(data))
    backup = tmp_path / "backup.json"
    assert main(["keys", "export", str(backup)]) == 0
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    text = backup.read_text()
    assert secret not in text and client_secret not in text and split_key(secret)[1] not in text
    assert key.key_id in text and client.client_id in text

    monkeypatch.setenv("GATEWAY_REDIS_URL", redis_server.url)
    assert main(["keys", "import", str(backup)]) == 0
    assert "imported 3 records" in capsys.readouterr().err

    async def read(store: KeyStore):  # type: ignore[no-untyped-def]
        return store.list_keys(), store.list_clients()

    keys, clients = with_store(data, redis_server.url, read)
    assert sorted(keys, key=lambda r: r.key_id) == sorted([key, old], key=lambda r: r.key_id)
    assert clients == [client]
    by_id = {r.key_id: r for r in keys}
    assert verify_key(secret, by_id.get, time.time()) == key  # the key itself works
    assert next(r for r in keys if r.key_id == old.key_id).state(time.time()) == "revoked"

    # Revoked since the backup: importing it again does not bring the key back...
    async def revoke(store: KeyStore) -> None:
        await store.put_key(dataclasses.replace(key, revoked=time.time()))

    with_store(data, redis_server.url, revoke)
    assert main(["keys", "import", str(backup)]) == 0
    assert "imported 0 records; 3 already present" in capsys.readouterr().err
    keys, _ = with_store(data, redis_server.url, read)
    assert next(r for r in keys if r.key_id == key.key_id).state(time.time()) == "revoked"
    # ...unless asked to.
    assert main(["keys", "import", str(backup), "--replace"]) == 0
    keys, _ = with_store(data, redis_server.url, read)
    assert next(r for r in keys if r.key_id == key.key_id).state(time.time()) == "active"


def test_a_bad_backup_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys):
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path / "data"))
    _, good = issue_key("acme")
    bad = tmp_path / "bad.json"
    import orjson

    bad.write_bytes(orjson.dumps({"version": 1, "keys": {
        good.key_id: good.to_json(), "gk_broken": {"id": "gk_broken", "tenant": "acme"}}}))
    assert main(["keys", "import", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "keys.gk_broken: invalid record" in err
    assert not (tmp_path / "data" / "credentials.json").exists()  # nothing written
    bad.write_text("[1, 2]")
    assert main(["keys", "import", str(bad)]) == 1
    assert "not a credential backup" in capsys.readouterr().err
