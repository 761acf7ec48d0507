"""Responses leave in one write: the transport wrapper, and uvicorn serving through it."""

from __future__ import annotations

import asyncio
import http.client
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from scheduler_extender.api.oneshot import CoalescingTransport, OneWriteHttpProtocol


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1)}.get(name, default)


def wrap(recording: RecordingTransport, loop: asyncio.AbstractEventLoop) -> CoalescingTransport:
    transport: Any = recording
    return CoalescingTransport(transport, loop)


def test_writes_in_one_loop_turn_leave_together() -> None:
    asyncio.run(_writes_in_one_loop_turn_leave_together())


async def _writes_in_one_loop_turn_leave_together() -> None:
    recording = RecordingTransport()
    transport = wrap(recording, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(b'{"ok": true}')
    assert recording.writes == []
    await asyncio.sleep(0)
    assert recording.writes == [b'HTTP/1.1 200 OK\r\n\r\n{"ok": true}']
    transport.write(b"next")
    await asyncio.sleep(0)
    assert recording.writes[1:] == [b"next"]


def test_close_sends_what_is_pending_first() -> None:
    asyncio.run(_close_sends_what_is_pending_first())


async def _close_sends_what_is_pending_first() -> None:
    recording = RecordingTransport()
    transport = wrap(recording, asyncio.get_running_loop())
    transport.write(b"last words")
    transport.close()
    assert recording.writes == [b"last words"]
    assert recording.closed
    await asyncio.sleep(0)  # the scheduled flush finds nothing left
    assert recording.writes == [b"last words"]


def test_other_calls_reach_the_transport() -> None:
    asyncio.run(_other_calls_reach_the_transport())


async def _other_calls_reach_the_transport() -> None:
    transport = wrap(RecordingTransport(), asyncio.get_running_loop())
    assert transport.get_extra_info("peername") == ("127.0.0.1", 1)


async def echo_app(scope: Scope, receive: Receive, send: Send) -> None:
    assert scope["type"] == "http"
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    reply = body * 3
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(reply)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": reply})


@pytest.fixture
def echo_server() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    config = uvicorn.Config(
        echo_app, host="127.0.0.1", port=port, http=OneWriteHttpProtocol, log_config=None
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            threading.Event().wait(0.05)
        assert server.started, "uvicorn did not start"
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.mark.parametrize("size", [10, 1 << 20])  # a small answer, and one far over a socket buffer
def test_uvicorn_answers_through_it_on_a_kept_alive_connection(echo_server: int, size: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", echo_server, timeout=10)
    try:
        for i in range(3):
            body = bytes([65 + i]) * size
            conn.request("POST", "/", body)
            response = conn.getresponse()
            assert response.status == 200
            assert response.read() == body * 3
    finally:
        conn.close()
