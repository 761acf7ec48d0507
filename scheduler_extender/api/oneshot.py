"""uvicorn's HTTP protocol, with each response sent to the socket in one write.

uvicorn writes a response's head when the app sends ``http.response.start``
and its body on ``http.response.body``: two TCP segments for every verb
answer. kube-scheduler's goroutine wakes for the first, then waits for the
second, and on a busy machine the extender may lose its CPU between the two
(``make bench-e2e`` found a fifth of the event loop's samples in socket writes).
Here the writes made in one turn of the event loop are joined and sent at the
end of that turn, so a head and the body sent right after it leave together.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingTransport:
    """A transport whose writes in one loop turn go out in one ``write``."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))

    def flush(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class OneWriteHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a ``CoalescingTransport``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        coalescing: Any = CoalescingTransport(transport, self.loop)
        super().connection_made(coalescing)
