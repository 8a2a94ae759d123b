"""An echo server on Python `websockets`, the reference run for docs/CONFORMANCE.md.

Started by tests/autobahn/run.sh with PEER=websockets: the same suite, the same cases and
the same limits (16 MiB messages, permessage-deflate offered by the client accepted), so
the two tables compare like with like.
"""
import asyncio
import sys

from websockets.asyncio.server import serve


async def echo(ws):
    try:
        async for message in ws:
            await ws.send(message)
    except Exception:
        # The suite breaks connections on purpose; the library has already closed them.
        pass


async def main(port):
    async with serve(echo, "127.0.0.1", port, max_size=16 * 1024 * 1024, compression="deflate"):
        await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
