"""One real Redis Cluster and one real Sentinel set per test session (tests/redis_ha.py):
started once, shared by every test here; a test that fails a node over leaves the set
healthy again (the old primary restarted as a replica) for the next one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.redis_ha import RedisClusterSet, SentinelSet


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterSet]:
    cluster = RedisClusterSet(tmp_path_factory.mktemp("cluster")).start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelSet]:
    sentinels = SentinelSet(tmp_path_factory.mktemp("sentinel")).start()
    yield sentinels
    sentinels.stop()


# The gateway fixtures of the limits suite: real tenants, real keys in the real key store.
from tests.limits.conftest import (  # noqa: E402
    as_tenant,
    start_limited,
    tenant_keys,
    upstream,
)

__all__ = ["as_tenant", "start_limited", "tenant_keys", "upstream"]
