"""A minimal, fast HTTP/1.1 upstream for benchmarks: answers every request with a small
JSON body over keep-alive. Raw asyncio protocol on uvloop, so it is not the bottleneck.

    python bench/fake_upstream.py PORT
    python bench/fake_upstream.py PORT --echo   # answers each body with itself, and
                                                # GET /count with how many it answered
"""

from __future__ import annotations

import asyncio
import sys

import uvloop

BODY = b'{"label":"positive","score":0.93}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
    + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)


ECHO = "--echo" in sys.argv
answered = 0


def _reply(head: bytes, body: bytes) -> bytes:
    global answered
    if not ECHO:
        return RESPONSE
    if head.startswith(b"get /count"):
        body = str(answered).encode()
    else:
        answered += 1
    return (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


class UpstreamProtocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].lower()
            length = 0
            i = head.find(b"content-length:")
            if i >= 0:
                length = int(head[i + 15:head.find(b"\r\n", i) if head.find(b"\r\n", i) > 0
                                  else len(head)])
            total = head_end + 4 + length
            if len(self.buffer) < total:
                return
            body = self.buffer[head_end + 4:total]
            self.buffer = self.buffer[total:]
            self.transport.write(_reply(head, body))  # type: ignore[attr-defined]


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(UpstreamProtocol, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1])))
