"""MuxRedis, the stores' pipelined connection, against a real (throwaway) Redis:
replies stay matched to callers whatever is cancelled, a stuck or restarted Redis costs
one error and the client comes back by itself, and URLs mean what they mean to redis-py."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from redis.exceptions import ConnectionError, ResponseError, TimeoutError

from gateway.stores import connect_redis
from gateway.stores.redis_mux import MuxRedis, MuxScript
from tests.processes import RedisServer
from tests.servers import free_port


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_replies_stay_matched_when_callers_are_cancelled(redis_server):
    """Half the callers give up mid-flight; every other one gets its own reply."""
    async def go() -> list[tuple[int, bytes]]:
        mux = MuxRedis(redis_server.url, 1.0, 1.0)
        rng = random.Random(7)

        async def echo(i: int) -> tuple[int, bytes]:
            return i, await mux.execute("ECHO", f"reply-{i}")

        try:
            await mux.ping()  # connected: the burst below is written at once
            tasks = [asyncio.create_task(echo(i)) for i in range(2000)]
            await asyncio.sleep(0)  # all written, none answered yet
            assert mux._link is not None and len(mux._link.waiters) == 2000
            for task in tasks:
                if rng.random() < 0.5:
                    task.cancel()
            done = await asyncio.gather(*tasks, return_exceptions=True)
            after = [await echo(i) for i in range(2000, 2010)]  # the stream is still in step
            return [r for r in done if not isinstance(r, BaseException)] + after
        finally:
            await mux.aclose()

    answers = run(go())
    assert 900 < len(answers) < 1100
    assert all(reply == f"reply-{i}".encode() for i, reply in answers)


def test_a_stuck_redis_times_out_then_the_client_reconnects(redis_server):
    async def go() -> tuple[list[object], float, bytes]:
        mux = MuxRedis(redis_server.url, 0.3, 0.3)
        try:
            await mux.ping()
            assert redis_server.proc is not None
            os.kill(redis_server.proc.pid, signal.SIGSTOP)
            try:
                start = time.monotonic()
                stuck = await asyncio.gather(*(mux.execute("ECHO", "x") for _ in range(5)),
                                             return_exceptions=True)
                waited = time.monotonic() - start
            finally:
                os.kill(redis_server.proc.pid, signal.SIGCONT)
            return stuck, waited, await mux.execute("ECHO", "back")
        finally:
            await mux.aclose()

    stuck, waited, back = run(go())
    assert all(isinstance(e, TimeoutError) for e in stuck), stuck
    assert 0.25 < waited < 1.0  # the deadline, not a hang
    assert back == b"back"


def test_the_client_comes_back_after_redis_restarts(redis_server):
    async def go() -> list[object]:
        mux = MuxRedis(redis_server.url, 0.5, 0.5)
        try:
            await mux.execute("SET", "k", "v")
            redis_server.stop()
            await asyncio.sleep(0.2)
            down = await asyncio.gather(mux.ping(), return_exceptions=True)
            redis_server.start()
            return [*down, await mux.execute("ECHO", "up")]
        finally:
            await mux.aclose()

    down, up = run(go())
    assert isinstance(down, ConnectionError)
    assert up == b"up"


def test_error_replies_raise_and_the_connection_goes_on(redis_server):
    async def go() -> tuple[object, bytes]:
        mux = MuxRedis(redis_server.url, 1.0, 1.0)
        try:
            await mux.execute("SET", "text", "abc")
            failed = await asyncio.gather(mux.execute("INCR", "text"), return_exceptions=True)
            return failed[0], await mux.execute("GET", "text")
        finally:
            await mux.aclose()

    failed, value = run(go())
    assert isinstance(failed, ResponseError) and "not an integer" in str(failed)
    assert value == b"abc"


def test_scripts_are_loaded_again_after_a_flush(redis_server):
    async def go() -> list[object]:
        mux = MuxRedis(redis_server.url, 1.0, 1.0)
        script = MuxScript(mux, "return {KEYS[1], ARGV[1]}")
        try:
            first = await script(["k"], ["a"])
            await mux.execute("SCRIPT", "FLUSH")
            return [first, await script(["k"], ["b"])]
        finally:
            await mux.aclose()

    assert run(go()) == [[b"k", b"a"], [b"k", b"b"]]


def test_nothing_listening_is_a_connection_error_at_once():
    async def go() -> tuple[object, float]:
        mux = MuxRedis(f"redis://127.0.0.1:{free_port()}", 1.0, 1.0)
        start = time.monotonic()
        got = await asyncio.gather(mux.ping(), return_exceptions=True)
        return got[0], time.monotonic() - start

    error, waited = run(go())
    assert isinstance(error, ConnectionError) and waited < 0.5


def test_callers_share_one_connect_to_a_redis_that_never_answers():
    """A peer that takes connections but never answers (AUTH hangs): twenty callers
    share one connection attempt and wait one connect timeout together."""
    import socket
    import threading

    silent = socket.create_server(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    accepted: list[socket.socket] = []

    def accept() -> None:  # takes every connection, never reads or answers
        with contextlib.suppress(OSError):
            while True:
                accepted.append(silent.accept()[0])

    threading.Thread(target=accept, daemon=True).start()

    async def go() -> tuple[list[object], float]:
        mux = MuxRedis(f"redis://:pw@127.0.0.1:{port}/0", 1.0, 0.3)
        start = time.monotonic()
        try:
            got = await asyncio.gather(*(mux.ping() for _ in range(20)),
                                       return_exceptions=True)
        finally:
            await mux.aclose()
        return got, time.monotonic() - start

    try:
        errors, waited = run(go())
    finally:
        silent.close()
        for conn in accepted:
            conn.close()
    assert all(isinstance(e, TimeoutError) for e in errors), errors  # redis-py's
    assert waited < 0.9  # one connect timeout (0.3 s), not twenty in turn
    assert len(accepted) == 1


def test_password_and_database_come_from_the_url(tmp_path):
    server = RedisServer(tmp_path / "redis", "--requirepass", "s3cret").start()
    try:
        async def go() -> tuple[object, bytes | None]:
            wrong = MuxRedis(f"redis://:nope@127.0.0.1:{server.port}/0", 1.0, 1.0)
            refused = (await asyncio.gather(wrong.ping(), return_exceptions=True))[0]
            mux = MuxRedis(f"redis://:s3cret@127.0.0.1:{server.port}/3", 1.0, 1.0)
            await mux.execute("SET", "where", "db3")
            await mux.aclose()
            reader = connect_redis(f"redis://:s3cret@127.0.0.1:{server.port}/3")
            try:
                return refused, await reader.get("where")
            finally:
                await reader.aclose()

        refused, value = run(go())
    finally:
        server.stop()
    assert isinstance(refused, ConnectionError) and "AUTH" in str(refused)
    assert value == b"db3"


def _self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    import ipaddress

    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "redis.crt", directory / "redis.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_rediss_urls_speak_tls_and_check_the_certificate(tmp_path):
    cert, key = _self_signed(tmp_path / "tls")
    tls_port = free_port()
    server = RedisServer(tmp_path / "redis", "--tls-port", str(tls_port),
                         "--tls-cert-file", str(cert), "--tls-key-file", str(key),
                         "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no")
    try:
        server.start()
    except RuntimeError:
        pytest.fail("redis-server did not start with TLS options")
    try:
        async def go() -> tuple[object, bytes]:
            base = f"rediss://127.0.0.1:{tls_port}/0"
            untrusted = MuxRedis(base, 1.0, 1.0)  # the system's CAs don't know this cert
            failed = (await asyncio.gather(untrusted.ping(), return_exceptions=True))[0]
            mux = MuxRedis(f"{base}?ssl_ca_certs={cert}", 1.0, 1.0)
            try:
                return failed, await mux.execute("ECHO", "over tls")
            finally:
                await mux.aclose()

        failed, reply = run(go())
    finally:
        server.stop()
    assert isinstance(failed, ConnectionError) and "CERTIFICATE_VERIFY_FAILED" in str(failed)
    assert reply == b"over tls"
