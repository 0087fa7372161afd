"""Sockets a test needs before any server: connected pairs (AF_UNIX and
loopback TCP), a pair whose peer has just reset, a free port, whether
::1 can be bound, and how long an AF_UNIX directory may be.
"""

import select
import socket

from tests.support.clients import reset_on_close
from tests.support.env import CLIENT_TIMEOUT, HAVE_UNIX

# Room left for the file name in an AF_UNIX path (sun_path is 108 bytes,
# 107 usable plus the NUL): a longer directory is replaced by one in /tmp.
UNIX_DIR_MAX = 80

# The kinds of socket_pair() this machine has.
KINDS = ["unix", "tcp"] if HAVE_UNIX else ["tcp"]


def socket_pair(kind, timeout=CLIENT_TIMEOUT):
    """Two connected stream sockets: "unix" (socketpair) or "tcp" (loopback).

    Both are plain ``socket.socket`` objects and both carry *timeout*.
    """
    if kind == "unix":
        a, b = socket.socketpair()
    else:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.settimeout(CLIENT_TIMEOUT)
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            b = socket.create_connection(listener.getsockname(),
                                         CLIENT_TIMEOUT)
            try:
                a, _ = listener.accept()
            except BaseException:
                b.close()
                raise
        finally:
            listener.close()
    a.settimeout(timeout)
    b.settimeout(timeout)
    return a, b


def reset_by_peer(pair):
    """A TCP pair (made by the ``pair`` fixture) whose peer has just reset
    the connection (RST)."""
    a, b = pair("tcp")
    a.sendall(b"never read by the peer")
    reset_on_close(b)
    b.close()
    readable, _, _ = select.select([a], [], [], CLIENT_TIMEOUT)
    assert readable, "no reset arrived"
    return a


def have_ipv6_loopback():
    """Whether this machine can bind ::1."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def free_port():
    """A TCP port of 127.0.0.1 the kernel just handed out and took back,
    for a tool that binds it itself (systemd-socket-activate)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
