"""Clients of a server under test, and what they read: every client socket
carries a timeout, so a server that never answers fails the test instead
of hanging it.
"""

import socket
import struct
import time

from tests.support.env import CLIENT_TIMEOUT, JOIN_TIMEOUT
from tests.support.servers import wait_for


def stream_client(server, timeout=CLIENT_TIMEOUT):
    """A connected client socket for a stream server of any family."""
    sock = socket.socket(server.address_family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(server.server_address)
    except BaseException:
        sock.close()
        raise
    return sock


def connect_when_listening(port, timeout=JOIN_TIMEOUT):
    """A client of 127.0.0.1:*port* once something listens there, or None
    if nothing does within *timeout*."""
    def connect():
        try:
            return socket.create_connection(("127.0.0.1", port),
                                            timeout=CLIENT_TIMEOUT)
        except ConnectionRefusedError:
            return None
    return wait_for(connect, timeout=timeout)


def recv_until_eof(sock, limit=1 << 20):
    """Everything the peer sends until it closes."""
    chunks = []
    size = 0
    while size < limit:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def recv_line(sock):
    """One line (up to and including b"\\n") or what came before EOF."""
    data = bytearray()
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        data += chunk
    return bytes(data)


def recv_exactly(sock, size):
    """*size* bytes from sock (fewer only if the peer closes first)."""
    got = bytearray()
    while len(got) < size:
        chunk = sock.recv(min(size - len(got), 1 << 18))
        if not chunk:
            break
        got += chunk
    return bytes(got)


def send_and_close(sock, data, chunks=None, pauses=()):
    """Send data (in *chunks*, pausing after the indexes in *pauses*), then
    shut the write side down so the reader sees end of file."""
    chunks = chunks or [data]
    for index, chunk in enumerate(chunks):
        sock.sendall(chunk)
        if index in pauses:
            time.sleep(0.001)
    sock.shutdown(socket.SHUT_WR)


def reset_on_close(sock):
    """Make close() send RST, not FIN (SO_LINGER on, with a zero timeout)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                    struct.pack("ii", 1, 0))
