"""`gateway dev` as a developer runs it: the bundled services start on the ports asked
for, the routes follow them, a stop signal leaves nothing behind, and what would fail
late (busy ports, the `[ml]` extra missing) fails at once with what to do."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import sysconfig
from pathlib import Path

import httpx
import pytest

from gateway.dev import ML_MODULES, port_free
from tests.processes import wait_http
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[1]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "ML_"))}
    return {**env, "GATEWAY_DATA_DIR": str(tmp_path / "data"), "GATEWAY_LOG_FORMAT": "json"}


def _gateway(*args: str) -> list[str]:
    return [sys.executable, "-m", "gateway", *args]


def _children(pid: int) -> list[int]:
    """Live processes whose parent is `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_stops_the_bundled_services_too(tmp_path, signum):
    subprocess.run(_gateway("init"), cwd=tmp_path, check=True, capture_output=True)
    port, sentiment, classify, embed = free_port(), free_port(), free_port(), free_port()
    env = _env(tmp_path)
    with (tmp_path / "dev.log").open("wb") as log:
        proc = subprocess.Popen(
            _gateway("dev", "--port", str(port), "--ml-ports",
                     f"{sentiment},{classify},{embed}"),
            cwd=tmp_path, env=env, stdout=log, stderr=log)
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", timeout=180, proc=proc)
        services = _children(proc.pid)
        assert len(services) == 3
        # The shipped routes follow the ports given: a real call reaches the real model.
        key = subprocess.run(_gateway("keys", "create", "--tenant", "demo"), cwd=tmp_path,
                             env=env, check=True, capture_output=True, text=True).stdout
        auth = {"Authorization": f"Bearer {key.strip()}"}
        r = httpx.post(f"http://127.0.0.1:{port}/v1/sentiment", json={"text": "I love it"},
                       headers=auth, timeout=10)
        assert r.status_code == 200 and r.json()["predictions"][0]["label"] == "positive"
        texts = ["A man is eating food.", "A man is eating a piece of bread.",
                 "The girl is carrying a baby."]
        r = httpx.post(f"http://127.0.0.1:{port}/v1/embeddings", json={"input": texts},
                       headers=auth, timeout=30)
        assert r.status_code == 200, r.text
        a, b, c = (d["embedding"] for d in r.json()["data"])
        assert len(a) == 384
        cosine = [sum(x * y for x, y in zip(a, other, strict=True)) for other in (b, c)]
        assert cosine[0] > 0.7 > 0.0 > cosine[1]  # 0.755 and -0.105 measured
        r = httpx.post(f"http://127.0.0.1:{port}/v1/intent",
                       json={"text": "I forgot my password"}, headers=auth, timeout=30)
        assert r.status_code == 200 and r.json()["predictions"][0]["label"] == "account_access"
        r = httpx.get(f"http://127.0.0.1:{port}/v1/ml/models", headers=auth, timeout=10)
        assert r.status_code == 200
        assert {m["id"] for m in r.json()["data"]} == {"all-MiniLM-L6-v2", "minilm-intent"}
        proc.send_signal(signum)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == (0 if signum == signal.SIGTERM else 130), (tmp_path / "dev.log").read_text()
    # Waited for, not left to die later: gone the moment `gateway dev` has exited.
    assert not [pid for pid in services if _alive(pid)]
    assert all(port_free("127.0.0.1", p) for p in (sentiment, classify, embed))


def test_a_busy_service_port_is_named_and_nothing_starts(tmp_path):
    subprocess.run(_gateway("init"), cwd=tmp_path, check=True, capture_output=True)
    sentiment, classify, embed, port = free_port(), free_port(), free_port(), free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", sentiment))
        holder.listen()
        done = subprocess.run(
            _gateway("dev", "--port", str(port), "--ml-ports",
                     f"{sentiment},{classify},{embed}"),
            cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=30)
    assert done.returncode == 1, done.stderr
    assert f"port {sentiment} (bundled service ml_services.sentiment)" in done.stderr
    assert "--ml-ports" in done.stderr and "Traceback" not in done.stderr
    assert port_free("127.0.0.1", classify) and port_free("127.0.0.1", port)


def test_a_busy_gateway_port_is_named(tmp_path):
    subprocess.run(_gateway("init"), cwd=tmp_path, check=True, capture_output=True)
    port = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        done = subprocess.run(
            _gateway("dev", "--port", str(port), "--ml-ports",
                     f"{free_port()},{free_port()},{free_port()}"),
            cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert f"port {port} (the gateway" in done.stderr and "--port" in done.stderr


def test_without_the_ml_extra_it_says_what_to_install(tmp_path):
    # An interpreter that sees every installed package except the [ml] extra's: the
    # site-packages entries linked one by one, minus those, and no site processing.
    site = Path(sysconfig.get_paths()["purelib"])
    view = tmp_path / "site"
    view.mkdir()
    hidden = tuple(m.lower() for m in (*ML_MODULES, "alt_profanity_check", "scikit_learn"))
    for entry in site.iterdir():
        if not entry.name.lower().startswith(hidden):
            (view / entry.name).symlink_to(entry)
    env = {**_env(tmp_path), "PYTHONPATH": f"{view}{os.pathsep}{ROOT}"}
    subprocess.run(_gateway("init"), cwd=tmp_path, check=True, capture_output=True)
    done = subprocess.run([sys.executable, "-S", "-m", "gateway", "dev", "--port",
                           str(free_port())], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 1, done.stderr
    assert "[ml]" in done.stderr and "gateway serve" in done.stderr
    assert "vaderSentiment" in done.stderr
    assert "Traceback" not in done.stderr
