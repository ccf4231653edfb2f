"""A real HTTP server on 127.0.0.1 for webhook tests: it records every request and answers as the
test says (a status code, or no answer at all)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

HANG = None
"""What `answer` returns for a request that is never answered."""


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    at: float  # time.monotonic()


class Receiver:
    """`answer(request)` gives the status to send, or `HANG` to keep the connection silent."""

    def __init__(self, answer: Callable[[Received], int | None] = lambda _: 200) -> None:
        self.answer = answer
        self.requests: list[Received] = []
        self._arrived = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    async def wait_for(self, count: int) -> list[Received]:
        """Until `count` requests have arrived in all (at most ten seconds)."""
        async with asyncio.timeout(10), self._arrived:
            await self._arrived.wait_for(lambda: len(self.requests) >= count)
        return self.requests[:count]

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, path, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = header.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                request = Received(method, path, headers, body, time.monotonic())
                async with self._arrived:
                    self.requests.append(request)
                    self._arrived.notify_all()
                status = self.answer(request)
                if status is HANG:
                    await asyncio.Event().wait()  # until the client gives up or the test ends
                    return
                writer.write(
                    f"HTTP/1.1 {status} Answer\r\nContent-Length: 2\r\n"
                    "Content-Type: text/plain\r\n\r\nok".encode()
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._tasks.discard(task)
            writer.close()


@contextlib.asynccontextmanager
async def receiving(
    answer: Callable[[Received], int | None] = lambda _: 200,
) -> AsyncIterator[Receiver]:
    receiver = Receiver(answer)
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.close()
