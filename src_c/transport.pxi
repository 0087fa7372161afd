# Accepting connections and receiving datagrams in C, producing exactly what
# socket.accept() and socket.recvfrom() would: a real socket.socket with the
# same blocking state, and the address decoded as CPython decodes it.


cdef object _address(sockaddr_storage *addr, socklen_t length):
    """Decode a peer address as CPython's socket module does."""
    cdef char host[INET6_ADDRSTRLEN]
    cdef sockaddr_in *ipv4
    cdef sockaddr_in6 *ipv6
    cdef sockaddr_un *unix_addr
    cdef Py_ssize_t path_length
    if length == 0:
        return None  # e.g. a datagram from an unbound unix socket
    family = addr.ss_family
    if family == AF_INET:
        ipv4 = <sockaddr_in *>addr
        inet_ntop(AF_INET, &ipv4.sin_addr, host, sizeof(host))
        return (host.decode("ascii"), ntohs(ipv4.sin_port))
    if family == AF_INET6:
        ipv6 = <sockaddr_in6 *>addr
        inet_ntop(AF_INET6, &ipv6.sin6_addr, host, sizeof(host))
        return (host.decode("ascii"), ntohs(ipv6.sin6_port),
                ntohl(ipv6.sin6_flowinfo), ipv6.sin6_scope_id)
    if family == AF_UNIX:
        unix_addr = <sockaddr_un *>addr
        path_length = length - (<char *>&unix_addr.sun_path[0] - <char *>addr)
        if path_length > 0 and unix_addr.sun_path[0] == 0:
            # Linux abstract namespace: bytes, leading NUL included.
            return PyBytes_FromStringAndSize(unix_addr.sun_path, path_length)
        if path_length < 0:
            path_length = 0
        return PyUnicode_DecodeFSDefaultAndSize(
            unix_addr.sun_path, strnlen(unix_addr.sun_path, path_length))
    raise OSError("unsupported address family %d" % family)


# Its fields (and the lock guarding each shared one) are declared in
# transport.pxd.
cdef class _ListenSocket:
    """What the engine needs of a listening socket, read once per loop."""

    def __cinit__(self, sock):
        self.sock = sock
        # socket.socket's own family/type are Python properties that build
        # enums on every read; the C values are what accept() passes on.
        self.family = _c_family.__get__(sock)
        self.type = _c_type.__get__(sock)
        self.proto = _c_proto.__get__(sock)
        self.fd = sock.fileno()

    cdef int read_blocking_mode(self) except -1:
        """Whether accept4() may be retried blindly (only batches need it)."""
        self.nonblocking = (csock_get_status_flags(self.fd) & O_NONBLOCK) != 0
        return 0

    cdef object wrap(self, int fd, sockaddr_storage *addr, socklen_t length):
        """Turn an accepted fd into (socket.socket, address), as accept()."""
        try:
            conn = SocketType(self.family, self.type, self.proto, fd)
        except BaseException:
            close(fd)
            raise
        if _getdefaulttimeout() is None and self.sock.gettimeout():
            conn.setblocking(True)
        return conn, _address(addr, length)


cdef object _accept_blocking(_ListenSocket listener):
    """accept4() with the GIL released, retrying on EINTR like CPython."""
    cdef sockaddr_storage addr
    cdef socklen_t length
    cdef int fd, err
    while True:
        length = sizeof(addr)
        memset(&addr, 0, sizeof(addr))
        with nogil:
            fd = accept4(listener.fd, <sockaddr *>&addr, &length, SOCK_CLOEXEC)
            err = errno
        if fd >= 0:
            return listener.wrap(fd, &addr, length)
        if err != EINTR:
            _raise_errno(err)
        PyErr_CheckSignals()


def accept(sock):
    """Accept one connection on *sock*: ``(socket.socket, address)``."""
    if not _engine_drives(sock):
        return sock.accept()
    return _accept_blocking(_ListenSocket(sock))


def recvfrom(sock, Py_ssize_t size):
    """Receive one datagram of at most *size* bytes: ``(bytes, address)``."""
    cdef sockaddr_storage addr
    cdef socklen_t length
    cdef ssize_t received
    cdef int err, fd
    if not _engine_drives(sock) or size < 0:
        return sock.recvfrom(size)  # CPython's path, and its errors
    data = PyBytes_FromStringAndSize(NULL, size)
    cdef char *into = PyBytes_AS_STRING(data)
    fd = sock.fileno()
    while True:
        length = sizeof(addr)
        memset(&addr, 0, sizeof(addr))
        with nogil:
            received = c_recvfrom(fd, into, size, 0,
                                  <sockaddr *>&addr, &length)
            err = errno
        if received >= 0:
            break
        if err != EINTR:
            _raise_errno(err)
        PyErr_CheckSignals()
    if received != size:
        data = data[:received]
    return data, _address(&addr, length)
