#!/usr/bin/env python3
"""peer_asyncio.py - the seed's pattern as a benchmark peer: Python asyncio,
one coroutine per connection reading lines (StreamReader.readline), each
request decoded with json.loads and answered with json.dumps as
{"id":..,"status":200,"body":payload}, written and drained per request.
Usage: python3 peer_asyncio.py SOCKET"""
import asyncio
import json
import os
import signal
import sys


async def handle(reader, writer):
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            try:
                req = json.loads(line)
                rid = req.get("id")
                if req.get("command") == "host.ping":
                    body = {"pong": True}
                else:
                    body = req.get("payload", {})
                reply = {"id": rid, "status": 200, "body": body}
            except (ValueError, AttributeError) as e:
                reply = {"id": None, "status": 400,
                         "error": {"code": "bad_request", "message": str(e)}}
            writer.write((json.dumps(reply, separators=(",", ":")) +
                          "\n").encode())
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    server = await asyncio.start_unix_server(handle, path=path,
                                             limit=1 << 20, backlog=4096)
    stop = asyncio.get_running_loop().create_future()
    for s in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(
            s, lambda: stop.done() or stop.set_result(None))
    async with server:
        await stop


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: peer_asyncio.py SOCKET")
    asyncio.run(main(sys.argv[1]))
