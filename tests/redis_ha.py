"""Real highly available Redis for the tests, on loopback, in temp dirs, saving nothing:
a six-node Redis Cluster (three primaries, one replica each) made by
`redis-cli --cluster create`, and a Sentinel set (a primary, a replica, three
sentinels). Fast failure detection (1 s) so failovers take seconds."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from tests.processes import RedisServer, stop_process
from tests.servers import free_port

NODE_TIMEOUT_MS = 1000
SERVICE = "gwprimary"
# Redis waits 5 s by default before a replica's first (diskless) full sync; until then
# the replica holds nothing, and a failover would promote an empty one.
SYNC_AT_ONCE = ("--repl-diskless-sync-delay", "0")


def in_sync(c: redis.Redis) -> bool:
    """A primary, or a replica whose link to its primary is up (it holds the data)."""
    info = c.info("replication")
    return bool(info["role"] != "slave" or info.get("master_link_status") == "up")


def wait(check: object, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():  # type: ignore[operator]
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout}s")
        time.sleep(0.05)


class ClusterNode(RedisServer):
    def __init__(self, workdir: Path):
        super().__init__(workdir, "--cluster-enabled", "yes", "--cluster-config-file",
                         "nodes.conf", "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                         "--cluster-port", str(free_port()), *SYNC_AT_ONCE)

    _client: redis.Redis | None = None

    def client(self) -> redis.Redis:
        """A plain client of this node (one, reused; it reconnects after a restart)."""
        if self._client is None:
            self._client = redis.Redis(port=self.port, socket_timeout=2)
        return self._client

    def stop(self) -> None:
        super().stop()
        if self._client is not None:
            self._client.close()
            self._client = None


class RedisClusterSet:
    """Six nodes; `url` is the gateway's redis+cluster:// URL (all six as seeds)."""

    def __init__(self, workdir: Path):
        self.nodes = [ClusterNode(workdir / f"node{i}") for i in range(6)]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start(self) -> RedisClusterSet:
        for node in self.nodes:
            node.start()
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli not found on PATH: apt-get install redis-tools")
        subprocess.run([cli, "--cluster", "create",
                        *(f"127.0.0.1:{n.port}" for n in self.nodes),
                        "--cluster-replicas", "1", "--cluster-yes"],
                       check=True, capture_output=True, timeout=60)
        self.wait_healthy()
        return self

    def wait_healthy(self) -> None:
        """Every running node says the cluster is ok, and every replica is in sync."""
        def ok() -> bool:
            for node in self.nodes:
                if node.proc is None:
                    continue
                c = node.client()
                if b"cluster_state:ok" not in c.execute_command("CLUSTER", "INFO"):
                    return False
                if not in_sync(c):
                    return False
            return True

        wait(ok, "Redis Cluster healthy")

    def live(self) -> list[ClusterNode]:
        return [n for n in self.nodes if n.proc is not None]

    def primary_of(self, key: str) -> ClusterNode:
        """The node serving `key`'s slot now (as the cluster itself says)."""
        c = self.live()[0].client()
        slot = int(c.execute_command("CLUSTER", "KEYSLOT", key))
        for start, end, primary, *_ in c.execute_command("CLUSTER", "SLOTS"):
            if int(start) <= slot <= int(end):
                return next(n for n in self.nodes if n.port == int(primary[1]))
        raise LookupError(key)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class SentinelProcess:
    def __init__(self, workdir: Path, primary_port: int):
        self.workdir, self.port = workdir, free_port()
        self.primary_port = primary_port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> SentinelProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "sentinel.conf"
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.workdir}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary_port} 2\n"
            f"sentinel down-after-milliseconds {SERVICE} {NODE_TIMEOUT_MS}\n"
            f"sentinel failover-timeout {SERVICE} 5000\n"
            f"sentinel parallel-syncs {SERVICE} 1\n")
        binary = shutil.which("redis-server")
        assert binary is not None
        self.proc = subprocess.Popen([binary, str(conf), "--sentinel"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait(lambda: self.client().ping(), "sentinel up", 10)
        return self

    _client: redis.Redis | None = None

    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = redis.Redis(port=self.port, socket_timeout=2)
        return self._client

    def primary(self) -> int:
        _host, port = self.client().sentinel_get_master_addr_by_name(SERVICE)
        return int(port)

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None
        if self._client is not None:
            self._client.close()
            self._client = None


class SentinelSet:
    """A primary, one replica, three sentinels (quorum 2)."""

    def __init__(self, workdir: Path):
        self.primary = RedisServer(workdir / "primary", *SYNC_AT_ONCE)
        self.workdir = workdir
        self.replica: RedisServer | None = None
        self.sentinels: list[SentinelProcess] = []

    @property
    def url(self) -> str:
        return ("redis+sentinel://" + ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
                + f"/{SERVICE}/0")

    def servers(self) -> list[RedisServer]:
        return [s for s in (self.primary, self.replica) if s is not None]

    def start(self) -> SentinelSet:
        self.primary.start()
        self.replica = RedisServer(self.workdir / "replica", *SYNC_AT_ONCE, "--replicaof",
                                   "127.0.0.1", str(self.primary.port)).start()
        self.sentinels = [SentinelProcess(self.workdir / f"sentinel{i}",
                                          self.primary.port).start() for i in range(3)]
        self.wait_healthy()
        return self

    def wait_healthy(self) -> None:
        """The replica is in sync, and the sentinels know it and each other (a failover
        needs all three)."""
        def ok() -> bool:
            for server in self.servers():
                with redis.Redis(port=server.port, socket_timeout=2) as c:
                    if not in_sync(c):
                        return False
            for s in self.sentinels:
                c = s.client()
                if not c.sentinel_slaves(SERVICE) or len(c.sentinel_sentinels(SERVICE)) < 2:
                    return False
            return True

        wait(ok, "sentinels agree")

    def wait_failover_done(self, old_port: int) -> None:
        """Every sentinel names a new primary, up and no longer failing over. A sentinel
        gives the promoted address (get-master-addr-by-name) while it still reconfigures the
        replicas, and its SENTINEL MASTERS entry, which redis-py's discovery checks, still
        flags the old primary down; a new client asking in that window finds no primary."""
        def done() -> bool:
            for s in self.sentinels:
                state = s.client().sentinel_master(SERVICE)
                if int(state["port"]) == old_port or not state["is_master"] or \
                        state["is_sdown"] or state["is_odown"] or \
                        "failover_in_progress" in state["flags"]:
                    return False
            return True

        wait(done, "failover done")

    def by_port(self, port: int) -> RedisServer:
        return next(s for s in self.servers() if s.port == port)

    def stop(self) -> None:
        for s in self.sentinels:
            s.stop()
        for server in self.servers():
            server.stop()
