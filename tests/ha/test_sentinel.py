"""A gateway on a real Sentinel set (redis+sentinel://): both of its Redis clients find
the primary through the sentinels; the primary killed under load fails open (no 5xx),
and after the sentinels promoted the replica the limits hold again and a key created
after the failover works, all without a restart."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import redis

from tests.limits.conftest import write_setup
from tests.redis_ha import SentinelSet, wait


def test_a_gateway_follows_a_sentinel_failover(redis_sentinel: SentinelSet, tmp_path: Path,
                                               upstream, start_limited, tenant_keys):
    victim, late = f"victim-{os.urandom(3).hex()}", f"late-{os.urandom(3).hex()}"
    write_setup(tmp_path, upstream.url, {"five": {"rate": "5/hour"}},
                {victim: {"tier": "five"}, late: {"tier": "five"}})
    gw = start_limited(redis_url=redis_sentinel.url, store_fail_mode="open",
                       store_breaker_cooldown=0.2)
    headers = tenant_keys.as_tenant(victim)
    assert [gw.client.get("/api/x", headers=headers).status_code for _ in range(6)] == \
        [200] * 5 + [429]
    old_port = redis_sentinel.sentinels[0].primary()
    doomed = redis_sentinel.by_port(old_port)
    with redis.Redis(port=doomed.port, socket_timeout=2) as c:
        # The replica has the keys and the counter: else the failover would promote a
        # replica without them, and the victim's key would be unknown (401).
        assert c.execute_command("WAIT", 1, 2000) == 1

    doomed.proc.kill()  # type: ignore[union-attr]
    doomed.proc.wait()  # type: ignore[union-attr]
    doomed.stop()
    killed = time.monotonic()
    seen: list[int] = []
    client = httpx.Client(base_url=gw.url, timeout=10)
    deadline = time.monotonic() + 30
    while seen[-3:] != [429, 429, 429]:
        assert time.monotonic() < deadline, seen[-20:]
        seen.append(client.get("/api/x", headers=headers).status_code)
    print(f"proof: Sentinel primary SIGKILLed (fail-open): {seen.count(200)} of {len(seen)} "
          f"requests served unlimited, limits held again "
          f"{time.monotonic() - killed:.2f} s after the kill")
    assert set(seen) <= {200, 429}  # fail open: never a 5xx
    assert redis_sentinel.sentinels[0].primary() != old_port
    redis_sentinel.wait_failover_done(old_port)

    # A key created after the failover (through the key store's redis-py client on the
    # new primary) is seen by the running gateway.
    tenant_keys.write([late], tmp_path / "data", redis_sentinel.url)
    wait(lambda: client.get("/api/x", headers=tenant_keys.as_tenant(late)).status_code
         == 200, "new key seen", 10)
    client.close()

    # Back as a replica of the new primary (as the sentinels would reconfigure it, only
    # sooner), so the set is whole again for whatever runs next.
    new_port = redis_sentinel.sentinels[0].primary()
    doomed.args = (*doomed.args, "--replicaof", "127.0.0.1", str(new_port))
    doomed.start()
    redis_sentinel.wait_healthy()
