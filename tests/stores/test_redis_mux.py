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
from redis.exceptions import ConnectionError, DataError, ResponseError, TimeoutError

from gateway.stores import connect_redis
from gateway.stores.redis_bridge import StoreScript
from gateway.stores.redis_mux import MuxRedis, _Link
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
    """The calls are sent half a deadline after the one that armed the deadline check,
    so they time out only if the check re-arms itself for them."""
    async def go() -> tuple[list[object], float, bytes]:
        mux = MuxRedis(redis_server.url, 0.4, 0.4)
        try:
            await mux.ping()  # arms the check for 0.4 s from now
            await asyncio.sleep(0.2)
            assert redis_server.proc is not None
            os.kill(redis_server.proc.pid, signal.SIGSTOP)
            try:
                start = time.monotonic()
                stuck = await asyncio.wait_for(asyncio.gather(
                    *(mux.execute("ECHO", "x") for _ in range(5)), return_exceptions=True), 3)
                waited = time.monotonic() - start
            finally:
                os.kill(redis_server.proc.pid, signal.SIGCONT)
            return stuck, waited, await mux.execute("ECHO", "back")
        finally:
            await mux.aclose()

    stuck, waited, back = run(go())
    assert all(isinstance(e, TimeoutError) for e in stuck), stuck
    assert 0.35 < waited < 0.8  # their own deadline, not the first check's, and no hang
    assert back == b"back"


def test_calls_in_flight_fail_at_once_when_the_connection_drops(tmp_path):
    """Redis dies with calls waiting on it: they fail with ConnectionError when the
    connection closes, not at their deadline, and the client comes back with Redis."""
    server = RedisServer(tmp_path / "redis").start()
    try:
        async def go() -> tuple[list[object], float, bytes]:
            mux = MuxRedis(server.url, 5.0, 1.0)
            try:
                await mux.ping()
                assert server.proc is not None
                os.kill(server.proc.pid, signal.SIGSTOP)  # the calls below wait...
                calls = asyncio.gather(*(mux.execute("ECHO", "x") for _ in range(5)),
                                       return_exceptions=True)
                await asyncio.sleep(0.1)
                start = time.monotonic()
                server.proc.kill()  # ...until the server is gone
                failed = await asyncio.wait_for(calls, 3)
                waited = time.monotonic() - start
                server.proc.wait()
                server.start()
                return failed, waited, await mux.execute("ECHO", "again")
            finally:
                await mux.aclose()

        failed, waited, again = run(go())
    finally:
        server.stop()
    assert all(isinstance(e, ConnectionError) for e in failed), failed
    assert waited < 1.0 and again == b"again"


def test_a_caller_cancelled_during_the_connect_leaves_it_to_the_others(tmp_path):
    server = RedisServer(tmp_path / "redis", "--requirepass", "pw").start()
    try:
        async def go() -> list[object]:
            mux = MuxRedis(f"redis://:pw@127.0.0.1:{server.port}/0", 1.0, 1.0)
            try:
                tasks = [asyncio.create_task(mux.execute("ECHO", f"r{i}")) for i in range(5)]
                await asyncio.sleep(0)  # all five wait on the one connect (and AUTH)
                tasks[0].cancel()
                return await asyncio.gather(*tasks, return_exceptions=True)
            finally:
                await mux.aclose()

        results = run(go())
    finally:
        server.stop()
    assert isinstance(results[0], asyncio.CancelledError)
    assert results[1:] == [b"r1", b"r2", b"r3", b"r4"]


def test_a_closed_client_fails_its_callers_with_a_redis_error(redis_server):
    async def go() -> list[object]:
        mux = MuxRedis(redis_server.url, 1.0, 1.0)
        dialing = asyncio.create_task(mux.ping())  # closed while it connects
        await asyncio.sleep(0)
        await mux.aclose()
        after = asyncio.create_task(mux.ping())
        return list(await asyncio.gather(dialing, after, return_exceptions=True))

    during, after = run(go())
    assert isinstance(during, ConnectionError), during  # not CancelledError: a store error
    assert isinstance(after, ConnectionError) and "closed" in str(after)


def test_a_send_on_a_lost_link_fails_instead_of_waiting():
    async def go() -> _Link:
        link = _Link(1.0)
        link.abort(ConnectionError("gone"))
        with pytest.raises(ConnectionError):
            link.send(b"*1\r\n$4\r\nPING\r\n")
        return link

    assert not run(go()).waiters


def test_a_client_is_bound_to_its_event_loop(redis_server):
    mux = MuxRedis(redis_server.url, 1.0, 1.0)
    first, second = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        first.run_until_complete(mux.ping())
        with pytest.raises(ConnectionError, match="another event loop"):
            second.run_until_complete(asyncio.wait_for(mux.ping(), 2))  # fails, no hang
        first.run_until_complete(mux.aclose())
    finally:
        first.close()
        second.close()


def test_arguments_redis_cannot_take_are_data_errors(redis_server):
    async def go() -> object:
        mux = MuxRedis(redis_server.url, 1.0, 1.0)
        try:
            return (await asyncio.gather(mux.execute("SET", "k", None),  # type: ignore[arg-type]
                                         return_exceptions=True))[0]
        finally:
            await mux.aclose()

    assert isinstance(run(go()), DataError)  # a RedisError: the breaker maps it


def test_a_malformed_reply_closes_the_connection():
    """A peer that answers with bytes no Redis would send (a wrong port, say)."""
    import socket
    import threading

    peer = socket.create_server(("127.0.0.1", 0))

    def answer_garbage() -> None:
        with contextlib.suppress(OSError):
            conn, _ = peer.accept()
            with conn:
                conn.recv(1024)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                conn.recv(1024)  # until the client closes

    threading.Thread(target=answer_garbage, daemon=True).start()

    async def go() -> object:
        mux = MuxRedis(f"redis://127.0.0.1:{peer.getsockname()[1]}/0", 1.0, 1.0)
        try:
            return (await asyncio.gather(mux.ping(), return_exceptions=True))[0]
        finally:
            await mux.aclose()

    try:
        error = run(go())
    finally:
        peer.close()
    assert isinstance(error, ConnectionError) and "malformed" in str(error)


def test_the_client_comes_back_after_redis_restarts(redis_server):
    """...and says once that it lost the connection (not on every failed reconnect, not
    when closed on purpose)."""
    from structlog.testing import capture_logs

    async def go() -> list[object]:
        mux = MuxRedis(redis_server.url, 0.5, 0.5)
        try:
            await mux.execute("SET", "k", "v")
            redis_server.stop()
            await asyncio.sleep(0.2)
            down = [*await asyncio.gather(mux.ping(), return_exceptions=True),
                    *await asyncio.gather(mux.ping(), return_exceptions=True)]
            redis_server.start()
            return [*down, await mux.execute("ECHO", "up")]
        finally:
            await mux.aclose()

    with capture_logs() as logs:
        *down, up = run(go())
    assert all(isinstance(e, ConnectionError) for e in down) and len(down) == 2
    assert up == b"up"
    assert [e["event"] for e in logs] == ["redis_connection_lost"]


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
        script = StoreScript(mux, "return {KEYS[1], ARGV[1]}")
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


def _self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate (its own CA) for `name`, an IP address or a DNS name."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        alt = x509.DNSName(name)
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _tls_redis(tmp_path: Path, name: str, cert: Path, key: Path, ca: Path,
               clients: str) -> tuple[RedisServer, int]:
    tls_port = free_port()
    server = RedisServer(tmp_path / name, "--tls-port", str(tls_port),
                         "--tls-cert-file", str(cert), "--tls-key-file", str(key),
                         "--tls-ca-cert-file", str(ca), "--tls-auth-clients", clients)
    try:
        server.start()
    except RuntimeError:
        pytest.fail("redis-server did not start with TLS options")
    return server, tls_port


async def _ping_over(url: str) -> object:
    mux = MuxRedis(url, 1.0, 1.0)
    try:
        return await mux.execute("ECHO", "over tls")
    except ConnectionError as exc:
        return exc
    finally:
        await mux.aclose()


def test_rediss_urls_check_the_server_as_their_options_say(tmp_path):
    ip_cert, ip_key = _self_signed(tmp_path / "tls", "127.0.0.1")
    named_cert, named_key = _self_signed(tmp_path / "tls", "cache.internal")
    by_ip, ip_port = _tls_redis(tmp_path, "by-ip", ip_cert, ip_key, ip_cert, "no")
    named, named_port = _tls_redis(tmp_path, "named", named_cert, named_key, named_cert, "no")
    try:
        async def go() -> list[object]:
            at_ip, at_named = f"rediss://127.0.0.1:{ip_port}/0", f"rediss://127.0.0.1:{named_port}/0"
            return [
                await _ping_over(at_ip),  # the system's CAs don't know this certificate
                await _ping_over(f"{at_ip}?ssl_ca_certs={ip_cert}"),
                await _ping_over(f"{at_named}?ssl_ca_certs={named_cert}"),  # wrong name
                await _ping_over(f"{at_named}?ssl_ca_certs={named_cert}"
                                 "&ssl_check_hostname=false"),
                await _ping_over(f"{at_named}?ssl_cert_reqs=none"),  # no checks at all
            ]

        untrusted, trusted, misnamed, unchecked_name, unchecked = run(go())
    finally:
        by_ip.stop()
        named.stop()
    assert isinstance(untrusted, ConnectionError) and "CERTIFICATE_VERIFY_FAILED" in str(untrusted)
    assert trusted == b"over tls"
    assert isinstance(misnamed, ConnectionError) and "mismatch" in str(misnamed)
    assert unchecked_name == b"over tls" and unchecked == b"over tls"


def test_rediss_urls_present_a_client_certificate(tmp_path):
    server_cert, server_key = _self_signed(tmp_path / "tls", "127.0.0.1")
    client_cert, client_key = _self_signed(tmp_path / "client", "gateway-client")
    server, port = _tls_redis(tmp_path, "mtls", server_cert, server_key, client_cert, "yes")
    try:
        async def go() -> list[object]:
            url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={server_cert}"
            return [await _ping_over(url),
                    await _ping_over(f"{url}&ssl_certfile={client_cert}"
                                     f"&ssl_keyfile={client_key}")]

        anonymous, identified = run(go())
    finally:
        server.stop()
    assert isinstance(anonymous, ConnectionError)
    assert identified == b"over tls"


def test_url_options_are_applied_or_refused(redis_server):
    from gateway.stores.redis_url import connection_options

    with pytest.raises(ValueError, match="unsupported option"):
        connection_options(redis_server.url + "?retry_policy=none")
    with pytest.raises(ValueError, match="set by the gateway"):
        connection_options(redis_server.url + "?socket_timeout=9")

    async def go() -> bytes:
        url = redis_server.url + "?client_name=gateway-7&health_check_interval=5"
        mux = MuxRedis(url, 1.0, 1.0)
        try:
            return bytes(await mux.execute("CLIENT", "GETNAME"))
        finally:
            await mux.aclose()

    assert run(go()) == b"gateway-7"
    # A certificate that cannot be loaded is a connection error (the breaker's), not a 500.
    failed = run(_ping_over(f"rediss://127.0.0.1:{free_port()}/0?ssl_certfile=/no/such.pem"))
    assert isinstance(failed, ConnectionError)


def test_an_unanswered_command_returns_at_once_and_the_stream_stays_in_step(redis_server):
    """execute_unanswered on a live connection finishes without suspending; its reply
    (an error reply too) is read and dropped, and later callers get their own replies,
    after its effect (one connection, in order)."""
    async def go() -> tuple[bool, bool, list[object]]:
        mux = MuxRedis(redis_server.url, 1.0, 1.0)
        try:
            await mux.ping()
            call = mux.execute_unanswered("SET", "k", "v")
            try:
                call.send(None)
                suspended = True
            except StopIteration:
                suspended = False
            call.close()
            failing = mux.execute_unanswered("INCR", "k")  # an error reply nobody reads
            with contextlib.suppress(StopIteration):
                failing.send(None)
            waiting = mux._link is not None and len(mux._link.waiters) == 2
            return suspended, waiting, [await mux.execute("GET", "k"),
                                        await mux.execute("ECHO", "after")]
        finally:
            await mux.aclose()

    suspended, waiting, replies = run(go())
    assert not suspended and waiting
    assert replies == [b"v", b"after"]
