"""A trivial ASGI app (read the body, answer 33 bytes), as a module attribute: what a server
costs per request whatever the app does (bench_servers.py). It answers the lifespan
protocol, which some servers run whether asked or not."""

ANSWER = b'{"label":"positive","score":0.93}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(ANSWER))]
START = {"type": "http.response.start", "status": 200, "headers": HEADERS}
BODY = {"type": "http.response.body", "body": ANSWER}


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].rsplit(".", 1)[1]  # startup | shutdown
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    await receive()
    await send(START)
    await send(BODY)
