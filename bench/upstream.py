"""An application stand-in for the edge benchmark, fast enough that the proxy in front of it is
what gets measured: asyncio, HTTP/1.1 keep-alive, a few milliseconds of (non-blocking) work per
dynamic request, none for a static file. Bodies from tests/edge.py's stand_in_body.

Run as its own process: `python -m bench.upstream NAME WORK_MS` prints its port, serves until
killed."""

from __future__ import annotations

import asyncio
import sys

from testsupport.edge import stand_in_body


async def serve(name: str, work_ms: float) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                if not path.startswith("/_next/static/"):
                    await asyncio.sleep(work_ms / 1000)
                body, ctype = stand_in_body(name, path)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: " + ctype.encode() + b"\r\nContent-Length: "
                             + str(len(body)).encode() + b"\r\nCache-Control: no-store\r\nX-Stand-In: "
                             + name.encode() + b"\r\n\r\n" + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], float(sys.argv[2])))
