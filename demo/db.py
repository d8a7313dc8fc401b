"""A tiny key-value "database" on 127.0.0.1:8767 that takes a moment to warm up.

It speaks one line per command: `PING`, `GET key`, `SET key value`, `INCR key`.
Try it: `nc 127.0.0.1 8767`, then `INCR visits`.
"""

import asyncio
import signal
import sys

PORT = 8767
data: dict[str, str] = {}


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while line := await reader.readline():
        command, *args = line.decode().split() or [""]
        match command.upper(), args:
            case "PING", []:
                reply = "PONG"
            case "GET", [key]:
                reply = data.get(key, "")
            case "SET", [key, value]:
                data[key] = value
                reply = "OK"
            case "INCR", [key]:
                data[key] = str(int(data.get(key, "0")) + 1)
                reply = data[key]
            case _:
                reply = f"ERR unknown command {command!r}"
        writer.write(f"{reply}\n".encode())
        await writer.drain()
    writer.close()


async def main() -> None:
    print("warming up the cache...", flush=True)
    await asyncio.sleep(1.5)  # dependents with `db = "healthy"` wait for the port to answer
    server = await asyncio.start_server(handle, "127.0.0.1", PORT)
    print(f"ready: accepting connections on 127.0.0.1:{PORT}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()
    print(f"shutting down with {len(data)} keys", file=sys.stderr, flush=True)


asyncio.run(main())
