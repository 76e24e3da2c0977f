"""The fence around the server tuning (chatsite/server/__init__.py): on the pinned versions every
fast path is taken; on any other version, or with CHATSITE_SERVER_TUNING=0, none is and one
WARNING says why; a fast path that fails at run time falls back to plain ASGI, says so once, and
loses no frame."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
from autobahn.websocket.protocol import WebSocketProtocol
from daphne.ws_protocol import WebSocketFactory
from twisted.internet.testing import StringTransport

from chatsite import server
from chatsite.server import crowds, lean_sockets, limits, prepared_frames
from chatsite.server.sockets import TunedSocket
from rooms.sockets import Broadcast
from tests.servers import ROOT


def daphne_socket(state: int = WebSocketProtocol.STATE_OPEN) -> limits.BoundedWebSocketProtocol:
    """A WebSocket as daphne builds it (with the site's limits), over a transport in memory."""
    limits.install()
    socket = WebSocketFactory(None).buildProtocol(("127.0.0.1", 1))
    assert isinstance(socket, limits.BoundedWebSocketProtocol)
    socket.makeConnection(StringTransport())
    socket.state = state
    return socket


def test_the_pinned_versions_are_the_tested_ones():
    assert server.untested_versions() == []


def test_a_broadcast_framed_once_is_written_straight_to_the_transport():
    socket = daphne_socket()
    frame = Broadcast('{"type":"pong"}')
    assert TunedSocket(socket, crowds.Slot(None)).push(frame) is True  # type: ignore[arg-type]
    assert socket.transport.value() == prepared_frames.wire(frame)


def test_what_daphne_keeps_of_a_handshake_is_let_go():
    socket = daphne_socket()
    socket.http_request_data = b"GET /ws/chat/ HTTP/1.1\r\n" * 50
    lean_sockets.release_handshake(socket)
    assert socket.http_request_data == b""
    assert socket.http_headers == {}


def test_a_crowded_handshake_pauses_and_restarts_its_clocks():
    socket = daphne_socket(WebSocketProtocol.STATE_CONNECTING)
    timeout = crowds._pause_handshake_clocks(socket)
    assert timeout == socket.openHandshakeTimeout and socket.openHandshakeTimeoutCall is None
    crowds._restart_handshake_clocks(socket, timeout)
    assert socket.openHandshakeTimeoutCall is not None


def test_a_fast_path_that_fails_falls_back_and_says_so_once(caplog):
    socket = daphne_socket()
    del socket.send_queue  # as if a new autobahn had renamed it
    tuned = TunedSocket(socket, crowds.Slot(None))  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="chatsite.server"):
        # False: the caller sends the frame through ASGI instead, so nothing is lost.
        assert tuned.push(Broadcast("{}")) is False
        assert tuned.push(Broadcast("{}")) is False
    warnings = [r for r in caplog.records if "falling back" in r.getMessage()]
    assert len(warnings) == 1


def _installed(env: dict[str, str], untested: bool = False) -> tuple[str, str]:
    """Install the server additions in a fresh process: (what it reports, its log)."""
    script = (
        "import logging, django\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "django.setup()\n"
        "from chatsite import server\n"
        + ("server.TESTED['daphne'] = '0.0'\n" if untested else "")
        + "server.install()\n"
        "from twisted.internet import tcp\n"
        "from daphne.ws_protocol import WebSocketFactory\n"
        "from chatsite.server import batched_writes, limits\n"
        "print(server.tuned(), tcp.Connection.write is batched_writes._write,\n"
        "      WebSocketFactory.protocol is limits.BoundedWebSocketProtocol)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "chatsite.settings", **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip(), done.stderr


@pytest.mark.parametrize(
    ("env", "untested", "expected"),
    [
        ({"CHATSITE_SERVER_TUNING": "1"}, False, "True True True"),
        ({"CHATSITE_SERVER_TUNING": "0"}, False, "False False True"),
        ({"CHATSITE_SERVER_TUNING": "1"}, True, "False False True"),
    ],
    ids=["pinned", "turned-off", "untested-version"],
)
def test_the_fast_paths_are_on_only_on_the_tested_versions(env, untested, expected):
    reported, log = _installed({"CHATSITE_DEV": "1", **env}, untested)
    # tuned, Twisted's write batched, daphne's sockets limited (the limits stay on)
    assert reported == expected
    if untested:
        assert log.count("WARNING") == 1
        assert "untested versions daphne 4.2.3 (tested: 0.0)" in log
