"""Batched writes on Twisted TCP connections: what one turn of the loop wrote, sent at its end.

Twisted buffers every write and registers the socket with epoll for writability, then sends on
a later reactor turn and unregisters it: three system calls and two callbacks per WebSocket
frame. Under daphne that was about 45 % of a worker's event loop when fanning out
(docs/performance.md). `install()` makes a write to an idle connection schedule one flush for
the end of the current turn instead: the flush sends everything written to that connection
meanwhile in one `send()` (a hub delivering a batch of events writes several frames to the same
socket in one turn), and only what the kernel does not take goes the usual way, through epoll.
TLS connections, and connections that are closing or already waiting for epoll, keep Twisted's
own path unchanged, so the order of bytes and the handling of lost connections stay Twisted's.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import tcp

from .switch import fell_back

_twisted_write = tcp.Connection.write
_twisted_write_sequence = tcp.Connection.writeSequence


def _write(self: Any, data: bytes) -> None:
    try:
        loop = getattr(self.reactor, "_asyncioEventloop", None)  # daphne's asyncio reactor
        plain = loop is None or self.TLS or not isinstance(data, bytes) or self.disconnecting
        if not plain and (not self.connected or self._writeDisconnected or not data):
            return
        idle = plain or (not self._tempDataBuffer and self.offset == len(self.dataBuffer))
    except Exception:  # nothing written yet: Twisted's own write takes it whole
        fell_back("a write could not wait for the end of the loop's turn")
        plain = True
    if plain:
        _twisted_write(self, data)
        return
    self._tempDataBuffer.append(data)
    self._tempDataLen += len(data)
    self._maybePauseProducer()
    # Not idle: a flush is scheduled already, or epoll is watching the socket.
    if idle:
        loop.call_soon(_flush, self)  # type: ignore[union-attr] # not plain: daphne's loop


def _write_sequence(self: Any, iovec: Any) -> None:
    """Several pieces at once (HTTP's chunked writes: the chat's event streams) take the same
    path as one write."""
    try:
        data = b"".join(iovec)
    except TypeError:
        _twisted_write_sequence(self, iovec)  # Twisted's own error for what is not bytes
        return
    _write(self, data)


def _flush(self: Any) -> None:
    if not self.connected or self.disconnecting or not self._tempDataBuffer:
        return  # closed meanwhile, or loseConnection() took over the buffer
    failed = self.doWrite()
    if failed is not None or self._tempDataBuffer or self.offset != len(self.dataBuffer):
        # The kernel did not take it all, or the connection is gone: Twisted's own write
        # path retries the rest, or meets the same error and closes the connection.
        self.startWriting()


def install() -> None:
    """Patch twisted.internet.tcp.Connection.write and writeSequence (idempotent)."""
    tcp.Connection.write = _write  # type: ignore[method-assign]
    tcp.Connection.writeSequence = _write_sequence  # type: ignore[method-assign]
