# The PROXY protocol header (csockserver._proxy), read off a new connection
# before anything else sees it: the waits and the framing are here, with
# the GIL released while waiting; the allow-list and the parsing, which run
# once per connection, are _proxy's.  Also here: the report of an error
# that escaped a request, which a check the proxy dropped does not get.
# csockserver/_pure/proxy.py is the twin.


cdef const unsigned char *_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
cdef const unsigned char *_V1_PREFIX = b"PROXY "

# The same constants in csockserver._proxy, which parses what is read here:
# the two must agree, as the plan's struct and kinds must (plan.pxi).
if ((PROXY_V1, PROXY_V2, PROXY_V1_MAX, PROXY_V2_FIXED,
        _V2_SIGNATURE[:12], _V1_PREFIX[:6])
        != (_proxy.V1, _proxy.V2, _proxy.V1_MAX, _proxy.V2_FIXED,
            _proxy.V2_SIGNATURE, _proxy.V1_PREFIX)):
    raise ImportError("csockserver._cengine's PROXY protocol constants do "
                      "not match csockserver._proxy: rebuild the extension")


cdef Py_ssize_t _header_length(const unsigned char *data, Py_ssize_t n,
                               int versions) noexcept nogil:
    """_proxy.header_length in C: the length once known, 0 while more bytes
    are needed, -1 when *data* cannot start a header, -2 for an overlong
    v1 line."""
    cdef Py_ssize_t i
    if n == 0:
        return 0
    if data[0] == _V2_SIGNATURE[0]:
        if not versions & PROXY_V2:
            return -1
        if memcmp(data, _V2_SIGNATURE, min(n, 12)) != 0:
            return -1
        if n < PROXY_V2_FIXED:
            return 0
        return PROXY_V2_FIXED + (data[14] << 8 | data[15])
    if not versions & PROXY_V1 or memcmp(data, _V1_PREFIX, min(n, 6)) != 0:
        return -1
    for i in range(1, min(n, PROXY_V1_MAX)):
        if data[i - 1] == b'\r' and data[i] == b'\n':
            return i + 1
    return -2 if n >= PROXY_V1_MAX else 0


cdef bytes read_header(int fd, int versions, object timeout):
    """The whole PROXY header at the start of connection *fd*, and not one
    byte more (what follows is the request's).

    While the header's end is unknown, the bytes waiting are peeked at and
    only those that belong to it are taken; each wait is a poll() bounded
    by what is left of *timeout*.  Raises ProxyHeaderError or OSError.
    """
    cdef unsigned char small[PROXY_SMALL]
    cdef unsigned char *buf = small
    cdef Py_ssize_t got = 0, length = 0, take, n
    cdef double deadline = -1.0 if timeout is None else _now() + timeout
    cdef double left
    cdef pollfd pfd
    cdef int ready, err = 0
    try:
        while length == 0 or got < length:
            with nogil:
                if length:
                    n = recv(fd, buf + got, length - got, MSG_DONTWAIT)
                else:
                    n = recv(fd, buf + got, PROXY_V1_MAX - got,
                             MSG_DONTWAIT | MSG_PEEK)
                err = errno
            if n == 0:
                raise _ProxyHeaderError(
                    "connection closed before its PROXY header ended")
            if n < 0:
                if err != EAGAIN and err != EINTR:
                    _raise_errno(err)
                if err == EINTR:
                    PyErr_CheckSignals()
                    continue
                left = -1.0 if deadline < 0 else deadline - _now()
                if deadline >= 0 and left <= 0:
                    raise _ProxyHeaderError(
                        "no PROXY header within %s s" % timeout)
                pfd.fd = fd
                pfd.events = POLLIN
                pfd.revents = 0
                with nogil:
                    ready = poll(&pfd, 1, millis(left))
                    err = errno
                if ready < 0 and err != EINTR:
                    _raise_errno(err)
                if ready < 0:
                    PyErr_CheckSignals()
                continue
            if length:
                got += n
                continue
            # Peeked: find the end, then take what is the header's.
            length = _header_length(buf, got + n, versions)
            if length == -1:
                raise _ProxyHeaderError("not a PROXY protocol header")
            if length == -2:
                raise _ProxyHeaderError("PROXY v1 header longer than 107 "
                                        "bytes")
            take = min(length - got, n) if length else n
            if length > PROXY_SMALL:
                buf = <unsigned char *>malloc(length)
                if buf == NULL:
                    buf = small
                    raise MemoryError()
                memcpy(buf, small, got)
            with nogil:
                n = recv(fd, buf + got, take, MSG_DONTWAIT)
                err = errno
            if n < 0:
                _raise_errno(err)
            got += n
        return PyBytes_FromStringAndSize(<char *>buf, length)
    finally:
        if buf != small:
            free(buf)


cdef bint reads_header_later(HookPlan *p) noexcept:
    """Whether the header is read where the request runs (a worker thread
    or a child) instead of before verify_request: only while that one is
    stock, so that nobody can tell the order apart."""
    return (p.verify_request == ALLOW
            and (p.process_request == THREAD or p.process_request == FORK))


cdef object client_address_of(object server, HookPlan *p, object request,
                              object peer):
    """The address the connection's PROXY header names, or None when the
    connection must be refused (the caller shuts it down)."""
    try:
        if (getattr(server, "proxy_protocol_from", None) is not None
                and not _proxy.allowed(server, peer)):
            return None
        header = read_header(request.fileno(), p.proxy_protocol,
                             getattr(server, "proxy_protocol_timeout",
                                     _proxy.DEFAULT_TIMEOUT))
        return _proxy.apply(header, peer)
    except (OSError, _ProxyHeaderError):
        return None


cdef int report_error(object server, HookPlan *p, object request,
                      object client_address, object exc) except -1:
    """handle_error for *exc*, which escaped a request, unless it is the
    proxy dropping a check connection of its own (_proxy.dropped_check)."""
    if not (p.proxy_protocol
            and _proxy.dropped_check(request, client_address, exc)):
        server.handle_error(request, client_address)
    return 0
