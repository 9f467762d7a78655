"""The production transport against a real HTTP server on loopback: the in-use cap
(GATEWAY_UPSTREAM_POOL_SIZE), a cancelled send closing its connection, and which
failure each way of not answering is."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl

import pytest

from gateway.transport import AttemptFailed, Http1Transport, UpstreamRequest


class Upstream:
    """Answers after `delay`; /sse streams until the client closes. Counts requests in
    progress and connections closed before their answer."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.active = self.peak = 0
        self.closed_early = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.active += 1
            self.peak = max(self.peak, self.active)
            try:
                if b" /sse " in head:
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                                 b"transfer-encoding: chunked\r\n\r\n9\r\ndata: x\n\n\r\n")
                    await writer.drain()
                    await reader.read(1)  # until the client closes
                    return
                with contextlib.suppress(TimeoutError):
                    if await asyncio.wait_for(reader.read(1), self.delay) == b"":
                        self.closed_early += 1
                        return
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
            finally:
                self.active -= 1
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def serve(upstream: Upstream) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(upstream.handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


def request(url: str, total: float = 5.0) -> UpstreamRequest:
    return UpstreamRequest("GET", url, [("x-a", "1"), ("x-a", "2")], None, 1.0, total)


def test_at_most_pool_size_requests_are_in_use_at_once():
    async def scenario() -> tuple[list[int], int]:
        upstream = Upstream(delay=0.2)
        server, url = await serve(upstream)
        transport = Http1Transport(pool_size=2)
        answers = await asyncio.gather(*(transport.send(request(url + "/x"))
                                         for _ in range(6)))
        server.close()
        return [a.status for a in answers], upstream.peak

    statuses, peak = asyncio.run(scenario())
    assert statuses == [200] * 6
    assert peak == 2


def test_a_stream_holds_its_place_until_released():
    async def scenario() -> tuple[bool, int]:
        upstream = Upstream(delay=0.0)
        server, url = await serve(upstream)
        transport = Http1Transport(pool_size=1)
        streamed = await transport.send(request(url + "/sse"))
        assert streamed.stream is not None and streamed.release is not None
        waiting = asyncio.ensure_future(transport.send(request(url + "/fast")))
        await asyncio.sleep(0.2)
        blocked = not waiting.done()
        await streamed.release()
        answer = await asyncio.wait_for(waiting, 2)
        server.close()
        return blocked, answer.status

    assert asyncio.run(scenario()) == (True, 200)


def test_a_cancelled_send_closes_its_connection():
    async def scenario() -> int:
        upstream = Upstream(delay=5.0)
        server, url = await serve(upstream)
        transport = Http1Transport()
        sending = asyncio.ensure_future(transport.send(request(url + "/slow")))
        await asyncio.sleep(0.2)
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sending
        for _ in range(50):
            if upstream.closed_early:
                break
            await asyncio.sleep(0.02)
        server.close()
        return upstream.closed_early

    assert asyncio.run(scenario()) >= 1


@pytest.mark.parametrize(("where", "kind"), [("refused", "connect"), ("late", "timeout")])
def test_failures_are_told_apart(where, kind):
    async def scenario() -> str:
        upstream = Upstream(delay=5.0)
        server, url = await serve(upstream)
        if where == "refused":
            server.close()
            await server.wait_closed()
        try:
            await Http1Transport().send(request(url + "/slow", total=0.3))
        except AttemptFailed as exc:
            return exc.failure.kind
        finally:
            server.close()
        return "answered"

    assert asyncio.run(scenario()) == kind


# -- HTTP/1.1 framing the upstream may choose ----------------------------------------------

async def raw_server(answer: bytes, close: bool = True, requests: list[bytes] | None = None
                     ) -> tuple[asyncio.Server, str]:
    """Answers every request on a connection with `answer` (then closes, if `close`);
    records each request's head and body in `requests`."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                body = b""
                if b"transfer-encoding: chunked" in head.lower():
                    while True:
                        size = int((await reader.readline()).strip(), 16)
                        body += (await reader.readexactly(size + 2))[:-2]
                        if size == 0:
                            break
                elif b"content-length:" in head.lower():
                    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                    body = await reader.readexactly(length)
                if requests is not None:
                    requests.append(head + body)
                writer.write(answer)
                await writer.drain()
                if close:
                    break
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def settle(transport: Http1Transport, server: asyncio.Server) -> None:
    """Close both sides and let the server's handlers see it before the loop ends."""
    await transport.aclose()
    server.close()
    await asyncio.sleep(0.05)


def send_once(answer: bytes, method: str = "GET", body=None, close: bool = True,
              headers: list[tuple[str, str]] | None = None
              ) -> tuple[int, bytes, list[bytes]]:
    async def scenario() -> tuple[int, bytes, list[bytes]]:
        seen: list[bytes] = []
        server, url = await raw_server(answer, close, seen)
        transport = Http1Transport()
        try:
            r = await asyncio.wait_for(transport.send(UpstreamRequest(
                method, url + "/x", headers or [], body, 1.0, 2.0)), 3)
            data = r.body if r.body is not None else b"".join([c async for c in r.stream])
            return r.status, data, seen
        finally:
            await settle(transport, server)

    return asyncio.run(scenario())


def test_an_answer_framed_by_the_connection_closing_is_read_to_its_end():
    status, data, _ = send_once(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end")
    assert (status, data) == (200, b"until the end")


def test_a_head_answer_declaring_a_body_does_not_wait_for_it():
    status, data, _ = send_once(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n",
                                method="HEAD", close=False)
    assert (status, data) == (200, b"")


def test_an_informational_answer_is_skipped():
    status, data, _ = send_once(b"HTTP/1.1 100 Continue\r\n\r\n"
                                b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok")
    assert (status, data) == (201, b"ok")


def test_a_streamed_body_is_sent_chunked_and_arrives_whole():
    async def parts():
        for part in (b"one,", b"", b"two,", b"three"):
            yield part

    status, _, seen = send_once(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
                                method="POST", body=parts())
    assert status == 200
    assert seen[0].lower().count(b"transfer-encoding: chunked") == 1
    assert b"content-length" not in seen[0].lower()
    assert seen[0].endswith(b"\r\n\r\none,two,three")


def test_a_header_value_with_a_line_break_is_not_sent():
    _, _, seen = send_once(b"HTTP/1.1 204 No Content\r\n\r\n", headers=[
        ("x-ok", "1"), ("x-evil", "a\r\nx-injected: 1")])
    assert b"x-ok: 1\r\n" in seen[0] and b"x-injected" not in seen[0]


def test_a_pooled_connection_the_upstream_closed_is_not_used_for_a_post():
    """The upstream closes each connection after answering, without saying so: the next
    POST (which may never be sent twice) goes out on a new connection, not the dead one."""
    async def scenario() -> list[int]:
        server, url = await raw_server(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        transport = Http1Transport()
        statuses = []
        for _ in range(3):
            r = await transport.send(UpstreamRequest("POST", url + "/x", [], b"{}", 1.0, 2.0))
            statuses.append(r.status)
            await asyncio.sleep(0.05)  # the upstream's close reaches this side meanwhile
        await settle(transport, server)
        return statuses

    assert asyncio.run(scenario()) == [200, 200, 200]


def test_connections_are_reused_when_the_upstream_keeps_them():
    async def scenario() -> int:
        connections = 0

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            try:
                while await reader.readuntil(b"\r\n\r\n"):
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            except (OSError, asyncio.IncompleteReadError):
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        transport = Http1Transport()
        for _ in range(20):
            assert (await transport.send(request(url + "/x"))).body == b"ok"
        await settle(transport, server)
        return connections

    assert asyncio.run(scenario()) == 1


def _self_signed(tmp_path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, a client context trusting only it) for 127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "upstream")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    return server, ssl.create_default_context(cafile=str(cert_file))


@pytest.mark.parametrize("trusted", [True, False])
def test_https_upstreams_are_verified(tmp_path, trusted):
    server_tls, client_tls = _self_signed(tmp_path)

    async def scenario() -> object:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nsecret")
                await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_tls)
        url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/x"
        # Without the test's root, certifi's roots refuse the self-signed certificate.
        transport = Http1Transport(tls=client_tls if trusted else None)
        try:
            return (await transport.send(request(url))).body
        except AttemptFailed as exc:
            return exc.failure.kind
        finally:
            await settle(transport, server)

    assert asyncio.run(scenario()) == (b"secret" if trusted else "connect")
