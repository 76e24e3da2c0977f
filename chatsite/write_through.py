"""Send at once on Twisted TCP connections when nothing is waiting to be sent.

Twisted buffers every write and sends it on a later reactor turn, registering the socket with
epoll for writability and unregistering it afterwards: three system calls and two callbacks per
WebSocket frame. Under daphne that was about 45 % of a worker's event loop when fanning out
(docs/performance.md). asyncio's own transports send at once and buffer only what the kernel
does not take; `install()` gives daphne's TCP connections the same behaviour. Everything else
(TLS, a non-empty buffer, a closing connection, a partial or failed send) takes Twisted's own
buffered path unchanged, so the order of bytes and the handling of lost connections stay
Twisted's.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import tcp

_buffered_write = tcp.Connection.write


def _write(self: Any, data: bytes) -> None:
    if (
        self.TLS
        or not data
        or not self.connected
        or self.disconnecting
        or self._writeDisconnected
        or self._tempDataBuffer
        or self.offset != len(self.dataBuffer)
        or not isinstance(data, bytes)
    ):
        _buffered_write(self, data)
        return
    sent = self.writeSomeData(data)
    if isinstance(sent, Exception):
        # Let Twisted's write path meet the same error and close the connection its own way.
        _buffered_write(self, data)
    elif sent < len(data):
        _buffered_write(self, data[sent:])


def install() -> None:
    """Patch twisted.internet.tcp.Connection.write (idempotent)."""
    tcp.Connection.write = _write  # type: ignore[method-assign]
