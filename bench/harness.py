"""Benchmark harness: start processes pinned to cores, drive them with wrk, parse figures.

Layout on a 2-core machine: the gateway (one worker) on core 0; the load generator (wrk)
and the fake upstream on core 1, so the gateway's figures are its own.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GATEWAY_CORE, LOAD_CORE = "0", "1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def pinned(core: str, argv: list[str]) -> list[str]:
    return ["taskset", "-c", core, *argv] if shutil.which("taskset") else argv


def start(argv: list[str], core: str, env: dict[str, str] | None = None,
          log: Path | None = None) -> subprocess.Popen[bytes]:
    if log is None:
        return subprocess.Popen(pinned(core, argv), env={**os.environ, **(env or {})},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                cwd=ROOT)
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(pinned(core, argv), env={**os.environ, **(env or {})},
                                stdout=out, stderr=out, cwd=ROOT)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of a process (all its threads) and its live children.

    Children count because some servers (granian, in bench_servers.py) serve from a
    worker process they spawn; `gateway serve` with one worker has none.
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        # A thread or a child may end between the listing and the read (ENOENT, ESRCH).
        with contextlib.suppress(OSError):
            children = (task / "children").read_text().split()
            for child in children:
                with contextlib.suppress(OSError):
                    total += cpu_seconds(int(child))
    return total


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@dataclass
class Result:
    name: str
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int = 0
    cpu_us: float = 0.0  # CPU of the measured server process per request, when known

    def row(self) -> str:
        cpu = f"  {self.cpu_us:>6.1f} us CPU/req" if self.cpu_us else ""
        return (f"{self.name:<34} c={self.connections:<3} {self.rps:>9.0f} req/s  "
                f"p50 {self.p50_ms:>7.3f} ms  p99 {self.p99_ms:>7.3f} ms  "
                f"errors {self.errors}{cpu}")


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(name: str, url: str, connections: int, seconds: float, method: str = "GET",
        body: str | None = None, headers: dict[str, str] | None = None,
        server_pid: int | None = None, timeout: float = 2.0) -> Result:
    """Run wrk pinned to the load core; one thread (a core is all it gets).

    With `server_pid`, also report that process's CPU time per request: a figure that
    other load on the machine disturbs far less than req/s.
    """
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install wrk")
    lua = f"wrk.method = {method!r}\n"
    if body is not None:
        lua += f"wrk.body = {body!r}\n"
    for k, v in (headers or {}).items():
        lua += f"wrk.headers[{k!r}] = {v!r}\n"
    # wrk counts non-2xx/3xx answers separately; report them as errors.
    lua += "done = function(summary, latency, requests) end\n"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua)
    cpu0 = cpu_seconds(server_pid) if server_pid else 0.0
    out = subprocess.run(
        pinned(LOAD_CORE, ["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--latency",
                           f"--timeout={max(1, round(timeout))}s", "-s", f.name, url]),
        capture_output=True, text=True, check=True,
    ).stdout
    cpu = cpu_seconds(server_pid) - cpu0 if server_pid else 0.0
    os.unlink(f.name)
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(g) for g in m.groups())
    return Result(name, connections, rps, _ms(*p50.groups()), _ms(*p99.groups()),  # type: ignore[union-attr]
                  errors, total, cpu / total * 1e6 if server_pid and total else 0.0)


def fake_upstream(core: str = LOAD_CORE) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = start([sys.executable, str(ROOT / "bench" / "fake_upstream.py"), str(port)], core)
    wait_port(port)
    return proc, port


def redis_server(core: str = LOAD_CORE) -> tuple[subprocess.Popen[bytes], int]:
    """A throwaway redis-server (nothing kept on disk) on a free port, ready."""
    port = free_port()
    proc = start(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
                 core)
    wait_port(port)
    return proc, port


GATEWAY_SERVE = [sys.executable, "-m", "gateway", "serve"]


def gateway(routes: str, env: dict[str, str] | None = None, workdir: Path | None = None,
            server: list[str] = GATEWAY_SERVE) -> tuple[subprocess.Popen[bytes], int, Path]:
    """`gateway serve` (one worker) on the gateway core, with the given routes.yaml text.

    `server` runs the app another way (bench_servers.py); "{port}" in it is the port.
    """
    workdir = workdir or Path(tempfile.mkdtemp(prefix="gw-bench-"))
    (workdir / "routes.yaml").write_text(routes)
    (workdir / "policies").mkdir(exist_ok=True)
    port = free_port()
    settings = {
        "GATEWAY_PORT": str(port), "GATEWAY_ROUTES_FILE": str(workdir / "routes.yaml"),
        "GATEWAY_POLICIES_DIR": str(workdir / "policies"), "GATEWAY_DATA_DIR": str(workdir),
        "GATEWAY_LOG_FORMAT": "json", **(env or {}),
    }
    argv = [arg.replace("{port}", str(port)) for arg in server]
    proc = start(argv, GATEWAY_CORE, settings, log=workdir / "gateway.log")
    wait_port(port)
    return proc, port, workdir


def stop(*procs: subprocess.Popen[bytes]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
