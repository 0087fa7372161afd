"""Accepting connections and receiving datagrams: the twin of
``src_c/transport.pxi``, which does in C what these socket methods do."""


def accept(sock):
    """Accept one connection on *sock*, as ``sock.accept()``."""
    return sock.accept()


def recvfrom(sock, size):
    """Receive one datagram of at most *size* bytes, as ``sock.recvfrom``."""
    return sock.recvfrom(size)
