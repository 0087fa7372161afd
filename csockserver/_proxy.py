"""The PROXY protocol (v1 text, v2 binary), as a receiving server needs it.

Beyond socketserver, and off unless a server sets ``proxy_protocol``.  A
load balancer that speaks it (HAProxy's ``send-proxy``/``send-proxy-v2``,
nginx's ``proxy_protocol on``, cloud L4 balancers) opens each connection
with one header naming the client it stands for.  The engines read that
header off the connection before anything else sees it (they wait and
frame it, the compiled one in C); this module, shared by both, holds what
runs once per connection after that: the allow-list of proxies, the
parsing, and the address the request gets.

The request's ``client_address`` becomes the client the header names, an
ordinary tuple (or path) that also carries the whole header as
``.proxy``, a :class:`ProxyInfo`; :func:`proxy_info` reads it back.

A LOCAL header opens a connection the proxy makes for itself, to check the
server's health.  When the proxy drops such a connection (HAProxy resets
its checks as soon as it has seen the server accept), the error that
escapes the request is logged at debug level (logger ``csockserver``),
not reported through handle_error: see :func:`dropped_check`.
"""

import ipaddress
import os
import select
import socket
from typing import NamedTuple

__all__ = ["ProxyInfo", "ProxyHeaderError", "proxy_info"]

# What a plan's proxy_protocol field holds: the versions accepted (a mask).
V1 = 1
V2 = 2
# proxy_protocol_timeout's default: how long a header may take to arrive.
DEFAULT_TIMEOUT = 3.0
_VERSIONS = {None: 0, "v1": V1, "v2": V2, "any": V1 | V2}

# The spec's sizes: a v1 line is at most 107 bytes with its CRLF; a v2
# header is 16 fixed bytes, then as many as its length field says.
V1_MAX = 107
V1_PREFIX = b"PROXY "
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_FIXED = 16

# How many bytes each v2 address family's block takes: source and
# destination addresses, then (for IP) their ports.
_V2_FAMILIES = {0x1: (socket.AF_INET, 12), 0x2: (socket.AF_INET6, 36),
                0x3: (getattr(socket, "AF_UNIX", None), 216)}
_V2_COMMANDS = {0x0: "LOCAL", 0x1: "PROXY"}


class ProxyHeaderError(ValueError):
    """The connection did not start with a PROXY header this server takes.

    The engines close such a connection without running any hook on it
    but shutdown_request; the server goes on serving.
    """


class ProxyInfo(NamedTuple):
    """One connection's PROXY protocol header, as the server received it.

    Beyond socketserver: csockserver.proxy_info(client_address) returns it
    for a request on a server with ``proxy_protocol`` set.

    ``version``        1 or 2.
    ``command``        "PROXY", or "LOCAL" for a connection the proxy makes
                       for itself (a health check).
    ``source``         the client as the proxy saw it, in getpeername()'s
                       form; None when the header names none (LOCAL, v1
                       UNKNOWN, v2 UNSPEC).
    ``destination``    the address the client connected to, or None.
    ``proxy_address``  the connection's real peer: the proxy.
    ``tlvs``           v2's type-length-values, {type: bytes} (the last of
                       a repeated type); {} for v1.
    """

    version: int            # 1 or 2
    command: str            # "PROXY", or "LOCAL" (the proxy's own check)
    source: object          # the client, as the proxy saw it (or None)
    destination: object     # where the client connected to (or None)
    proxy_address: object   # the connection's real peer: the proxy
    tlvs: dict              # v2 type-length-values, {type: value} ({} in v1)


# client_address stays a plain-looking tuple or path, with one attribute
# more.  (Built-in sequences take no __slots__ here, hence the __dict__.)
class _ProxiedTuple(tuple):
    pass


class _ProxiedStr(str):
    pass


class _ProxiedBytes(bytes):
    pass


_PROXIED = (_ProxiedTuple, _ProxiedStr, _ProxiedBytes)


def proxy_info(client_address):
    """The :class:`ProxyInfo` a request's client address came from, or
    None when the server does not use the PROXY protocol."""
    if isinstance(client_address, _PROXIED):
        return client_address.proxy
    return None


def versions_of(server):
    """The plan's proxy_protocol field for *server*: 0 when off."""
    setting = getattr(server, "proxy_protocol", None)
    try:
        versions = _VERSIONS[setting]
    except (KeyError, TypeError):
        raise ValueError("proxy_protocol must be None, 'v1', 'v2' or 'any', "
                         "not {!r}".format(setting)) from None
    if versions and getattr(server, "socket_type",
                            socket.SOCK_STREAM) != socket.SOCK_STREAM:
        raise ValueError("proxy_protocol is for stream servers; "
                         "{} is not one".format(type(server).__name__))
    if versions:
        _networks(getattr(server, "proxy_protocol_from", None))  # checked
    return versions


# -- framing: where the header ends (the engines' read loop asks this) ------

def header_length(data, versions):
    """The length of the header *data* starts with, once known.

    0 means more bytes are needed (every byte so far belongs to the
    header); ProxyHeaderError means *data* cannot start one.  The compiled
    engine has the same function in C (src_c/proxy.pxi).
    """
    if not data:
        return 0
    if data[0] == V2_SIGNATURE[0]:
        if not versions & V2 or not V2_SIGNATURE.startswith(
                bytes(data[:len(V2_SIGNATURE)])):
            raise ProxyHeaderError("not a PROXY protocol header")
        if len(data) < V2_FIXED:
            return 0
        return V2_FIXED + (data[14] << 8 | data[15])
    if not versions & V1 or not V1_PREFIX.startswith(
            bytes(data[:len(V1_PREFIX)])):
        raise ProxyHeaderError("not a PROXY protocol header")
    end = bytes(data[:V1_MAX]).find(b"\r\n")
    if end >= 0:
        return end + 2
    if len(data) >= V1_MAX:
        raise ProxyHeaderError("PROXY v1 header longer than 107 bytes")
    return 0


# -- what the server does with a header once it has one ---------------------

def allowed(server, peer):
    """Whether *peer* may send PROXY headers (``proxy_protocol_from``).

    The allow-list holds IP networks; a unix-socket peer, which only the
    socket file's permissions let in, is always allowed.
    """
    networks = _networks(getattr(server, "proxy_protocol_from", None))
    if networks is None or not isinstance(peer, tuple):
        return True
    try:
        address = ipaddress.ip_address(peer[0].partition("%")[0])
    except (ValueError, IndexError, AttributeError):
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return any(address in net or (mapped is not None and mapped in net)
               for net in networks)


_network_cache = {}


def _networks(setting):
    """proxy_protocol_from as a tuple of ip_network objects (None: any)."""
    if setting is None:
        return None
    try:
        return _network_cache[setting]
    except (KeyError, TypeError):
        pass
    items = [setting] if isinstance(setting, (str, bytes)) else setting
    networks = tuple(ipaddress.ip_network(item, strict=False)
                     for item in items)
    try:
        if len(_network_cache) < 64:
            _network_cache[setting] = networks
    except TypeError:
        pass  # unhashable (a list): parsed again each time
    return networks


def apply(header, peer):
    """The client address for a connection from *peer* that sent *header*.

    The address is the one the header names, carrying the header's
    ProxyInfo as ``.proxy``; for a LOCAL command, or a header that names
    no address (v1 UNKNOWN, v2 UNSPEC), it is *peer* itself.
    """
    if header[:1] == b"P":
        info = _parse_v1(header, peer)
    else:
        info = _parse_v2(header, peer)
    address = info.source
    if info.command == "LOCAL" or address is None:
        address = peer
    if isinstance(address, tuple):
        address = _ProxiedTuple(address)
    elif isinstance(address, str):
        address = _ProxiedStr(address)
    else:
        address = _ProxiedBytes(address)
    address.proxy = info
    return address


def _parse_v1(header, peer):
    try:
        line = header[:-2].decode("ascii")
    except UnicodeDecodeError:
        raise ProxyHeaderError("PROXY v1 header is not ASCII") from None
    fields = line.split(" ")
    if len(fields) >= 2 and fields[1] == "UNKNOWN":
        # The proxy could not say (e.g. its own client was not TCP).
        return ProxyInfo(1, "PROXY", None, None, peer, {})
    if len(fields) != 6 or fields[1] not in ("TCP4", "TCP6"):
        raise ProxyHeaderError("malformed PROXY v1 header")
    family = socket.AF_INET if fields[1] == "TCP4" else socket.AF_INET6
    source = _v1_address(family, fields[2], fields[4])
    destination = _v1_address(family, fields[3], fields[5])
    return ProxyInfo(1, "PROXY", source, destination, peer, {})


def _v1_address(family, host, port):
    """An address as socket.getpeername() spells it for *family*."""
    try:
        packed = socket.inet_pton(family, host)
    except OSError:
        raise ProxyHeaderError("bad address in PROXY v1 header") from None
    if not (port.isdigit() and port.isascii() and len(port) <= 5
            and (port == "0" or port[0] != "0") and int(port) <= 65535):
        raise ProxyHeaderError("bad port in PROXY v1 header")
    return _ip_address(family, packed, int(port))


def _ip_address(family, packed, port):
    host = socket.inet_ntop(family, packed)
    if family == socket.AF_INET:
        return (host, port)
    return (host, port, 0, 0)


def _parse_v2(header, peer):
    version, command = header[12] >> 4, header[12] & 0xF
    if version != 2 or command not in _V2_COMMANDS:
        raise ProxyHeaderError("unsupported PROXY v2 version or command")
    family_code, transport = header[13] >> 4, header[13] & 0xF
    if transport > 2 or (family_code and family_code not in _V2_FAMILIES):
        raise ProxyHeaderError("unsupported PROXY v2 address family")
    body = memoryview(header)[V2_FIXED:]
    source = destination = None
    block = 0
    if family_code:
        family, block = _V2_FAMILIES[family_code]
        if len(body) < block:
            raise ProxyHeaderError("PROXY v2 address block is truncated")
        # A LOCAL header's addresses mean nothing (the spec says ignore).
        if family is not None and command == 0x1:
            source, destination = _v2_addresses(family, body[:block])
    tlvs = _v2_tlvs(body[block:])
    return ProxyInfo(2, _V2_COMMANDS[command], source, destination, peer,
                     tlvs)


def _v2_addresses(family, block):
    if family == socket.AF_INET or family == socket.AF_INET6:
        size = 4 if family == socket.AF_INET else 16
        ports = block[2 * size:]
        source = _ip_address(family, bytes(block[:size]),
                             ports[0] << 8 | ports[1])
        destination = _ip_address(family, bytes(block[size:2 * size]),
                                  ports[2] << 8 | ports[3])
        return source, destination
    return _unix_path(block[:108]), _unix_path(block[108:])


def _unix_path(raw):
    """A sun_path as Python's socket module gives it: str, or bytes for an
    abstract name (leading NUL)."""
    raw = bytes(raw)
    if raw[:1] == b"\0":
        return raw.rstrip(b"\0")
    return os.fsdecode(raw.partition(b"\0")[0])


def _v2_tlvs(data):
    tlvs = {}
    while data:
        if len(data) < 3:
            raise ProxyHeaderError("truncated TLV in PROXY v2 header")
        size = data[1] << 8 | data[2]
        if len(data) < 3 + size:
            raise ProxyHeaderError("truncated TLV in PROXY v2 header")
        tlvs[data[0]] = bytes(data[3:3 + size])
        data = data[3 + size:]
    return tlvs


# -- a check connection the proxy dropped -------------------------------------

# Why the engines look after the request ran, not before the handler is
# made (by peeking for a first byte, say): a server may speak first (an
# SMTP greeting, which HAProxy's smtpchk waits for), and a wait before the
# handler would hold that up; and every hook still runs where socketserver
# runs it, for a check as for any request.  Only the report changes.

# What the request sees when its peer drops the connection.
_DROPPED = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)


def dropped_check(request, client_address, exc):
    """Whether *exc*, escaping a request, is its proxy dropping a check.

    True (and a debug record logged) when the connection came with a LOCAL
    header, *exc* is a reset, abort or broken pipe, and the request's own
    connection has hung up, so that the error is that connection's and not
    one of the handler's other sockets.  The engines then do not call
    handle_error; any other error is reported as usual.
    """
    info = proxy_info(client_address)
    if (info is None or info.command != "LOCAL"
            or not isinstance(exc, _DROPPED) or not _hung_up(request)):
        return False
    import logging      # only once a check was dropped
    logging.getLogger("csockserver").debug(
        "%s dropped its check connection (PROXY LOCAL): %s",
        info.proxy_address, exc)
    return True


def _hung_up(request):
    """Whether the connection's peer is gone (POLLHUP: reset, or closed both
    ways)."""
    try:
        fd = request.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    if fd < 0:
        return False
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return any(events & select.POLLHUP for _, events in poller.poll(0))
