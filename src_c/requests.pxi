# The steps of one request that run wherever it runs (in place, on a
# worker thread, in a child): finish_request, then shutdown_request and the
# close_request it calls.  Each step runs in C when the plan says the hook
# is stock and calls the Python method when it is not.
# csockserver/_pure/requests.py is the twin.

cdef int finish_request(object server, HookPlan *p, object request,
                        object client_address) except -1:
    """finish_request: the stock one makes the handler, which does the work."""
    if p.finish_request == NEW_HANDLER:
        server.RequestHandlerClass(request, client_address, server)
    else:
        server.finish_request(request, client_address)
    return 0


cdef int _close_socket(object request) except -1:
    """request.close(), without its two Python frames for a plain socket.

    socket.socket.close() only marks the socket closed while makefile()
    objects still use it (_io_refs); the last of those closes the fd.
    """
    if type(request) is not SocketType:
        request.close()
        return 0
    request._closed = True
    if request._io_refs <= 0:
        _c_close(request)
    return 0


cdef int shutdown_request(object server, HookPlan *p,
                          object request) except -1:
    """shutdown_request (and the close_request it calls)."""
    cdef int fd
    if p.shutdown_request == PYTHON:
        server.shutdown_request(request)
        return 0
    if p.shutdown_request == SHUT_WR_THEN_CLOSE:
        if type(request) is SocketType:
            fd = request.fileno()
            if fd >= 0:
                # Errors are ignored, as the stock hook does.
                c_shutdown(fd, SHUT_WR)
        else:
            try:
                request.shutdown(SHUT_WR)
            except OSError:
                pass
    return close_request(server, p, request)


cdef int close_request(object server, HookPlan *p, object request) except -1:
    """close_request."""
    if p.close_request == CLOSE_SOCKET:
        _close_socket(request)
    elif p.close_request == PYTHON:
        server.close_request(request)
    return 0
