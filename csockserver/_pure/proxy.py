"""The PROXY protocol header of a new connection, read before anything
else sees it, and the report of an error that escaped a request, which a
check the proxy dropped does not get: the twin of ``src_c/proxy.pxi``.
The allow-list, the parsing and what counts as a dropped check are
``csockserver._proxy``'s, shared by both engines."""

import select
import socket
from time import monotonic

from .. import _proxy
from .._engine.plan import Kind
from .util import millis


def read_header(sock, versions, timeout):
    """The whole PROXY header at the start of *sock*, and not one byte
    more (what follows is the request's).

    While the header's end is unknown, the bytes waiting are peeked at and
    only those that belong to it are taken.  Each recv() comes after poll()
    said the socket is readable, so that a socket timeout of the user's
    never adds a wait of its own.  Raises ProxyHeaderError or OSError.
    """
    deadline = None if timeout is None else monotonic() + timeout
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    header = bytearray()
    length = 0
    while not length or len(header) < length:
        left = None if deadline is None else deadline - monotonic()
        if (left is not None and left <= 0) or not poller.poll(millis(left)):
            raise _proxy.ProxyHeaderError(
                "no PROXY header within {} s".format(timeout))
        if length:
            chunk = sock.recv(length - len(header), socket.MSG_DONTWAIT)
        else:
            seen = sock.recv(_proxy.V1_MAX - len(header),
                             socket.MSG_DONTWAIT | socket.MSG_PEEK)
            length = _proxy.header_length(header + seen, versions) if seen \
                else 0
            take = min(length - len(header), len(seen)) if length \
                else len(seen)
            chunk = sock.recv(take, socket.MSG_DONTWAIT) if take else b""
        if not chunk:
            raise _proxy.ProxyHeaderError(
                "connection closed before its PROXY header ended")
        header += chunk
    return bytes(header)


def reads_header_later(plan):
    """Whether the header is read where the request runs (a worker thread
    or a child) instead of before verify_request: only while that one is
    stock, so that nobody can tell the order apart."""
    return (plan.verify_request == Kind.ALLOW
            and plan.process_request in (Kind.THREAD, Kind.FORK))


def client_address_of(server, plan, request, peer):
    """The address the connection's PROXY header names, or None when the
    connection must be refused (the caller shuts it down)."""
    try:
        if (getattr(server, "proxy_protocol_from", None) is not None
                and not _proxy.allowed(server, peer)):
            return None
        header = read_header(request, plan.proxy_protocol,
                             getattr(server, "proxy_protocol_timeout",
                                     _proxy.DEFAULT_TIMEOUT))
        return _proxy.apply(header, peer)
    except (OSError, _proxy.ProxyHeaderError):
        return None


def report_error(server, plan, request, client_address, exc):
    """handle_error for *exc*, which escaped a request, unless it is the
    proxy dropping a check connection of its own (_proxy.dropped_check)."""
    if not (plan.proxy_protocol
            and _proxy.dropped_check(request, client_address, exc)):
        server.handle_error(request, client_address)
