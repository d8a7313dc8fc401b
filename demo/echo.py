"""An async TCP echo server on 127.0.0.1:$PORT, in a child process with its own loop.

services.toml runs two replicas, on 8770 and 8771. Try it: `nc 127.0.0.1 8770`, type a
line, get it back.
"""

import asyncio
import os

import tuisup

PORT = int(os.environ.get("PORT", "8770"))


async def serve(ctx: tuisup.Context) -> None:
    """Echo every line back until tuisup asks us to stop."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        print(f"{peer[0]}:{peer[1]} connected")
        while line := await reader.readline():
            writer.write(line)
            await writer.drain()
        writer.close()
        print(f"{peer[0]}:{peer[1]} left")

    server = await asyncio.start_server(echo, "127.0.0.1", PORT)
    print(f"echoing on 127.0.0.1:{PORT}")
    async with server:
        await ctx.token.wait_async()
    print("echo server closed")
