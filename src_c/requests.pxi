# One request's path through the hooks: verify, process (finish + shutdown),
# and the error handling around them, in socketserver's order.  Each step
# runs in C when the plan says the hook is stock and calls the Python method
# when it is not.

cdef struct HookPlan:
    int get_request
    int verify_request
    int process_request
    int finish_request
    int shutdown_request
    int close_request
    int service_actions
    int handle_timeout
    int handle_request_noblock
    int process_request_thread
    int collect_children


cdef HookPlan _read_plan(plan) except *:
    cdef HookPlan p
    p.get_request = plan.get_request
    p.verify_request = plan.verify_request
    p.process_request = plan.process_request
    p.finish_request = plan.finish_request
    p.shutdown_request = plan.shutdown_request
    p.close_request = plan.close_request
    p.service_actions = plan.service_actions
    p.handle_timeout = plan.handle_timeout
    p.handle_request_noblock = plan.handle_request_noblock
    p.process_request_thread = plan.process_request_thread
    p.collect_children = plan.collect_children
    return p


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


cdef int _shutdown(object server, HookPlan *p, object request) except -1:
    cdef int fd
    if p.shutdown_request == PYTHON:
        server.shutdown_request(request)
        return 0
    if p.shutdown_request == SHUT_WR_THEN_CLOSE:
        if type(request) is SocketType:
            fd = request.fileno()
            if fd >= 0:
                c_shutdown(fd, SHUT_WR)  # errors ignored, as the stock hook does
        else:
            try:
                request.shutdown(SHUT_WR)
            except OSError:
                pass
    return _close_request(server, p, request)


cdef int _close_request(object server, HookPlan *p, object request) except -1:
    if p.close_request == CLOSE:
        _close_socket(request)
    elif p.close_request == PYTHON:
        server.close_request(request)
    return 0


cdef int _handle_one(object server, HookPlan *p, object request,
                     object client_address) except -1:
    """What the stock _handle_request_noblock does once it has a request."""
    if (p.verify_request == STOCK
            or server.verify_request(request, client_address)):
        try:
            if p.process_request == THREAD:
                _start_thread_request(server, p, request, client_address)
            elif p.process_request == FORK:
                _fork_request(server, p, request, client_address)
            elif p.process_request == STOCK:
                if p.finish_request == STOCK:
                    server.RequestHandlerClass(request, client_address, server)
                else:
                    server.finish_request(request, client_address)
                _shutdown(server, p, request)
            else:
                server.process_request(request, client_address)
        except Exception:
            server.handle_error(request, client_address)
            _shutdown(server, p, request)
        except:
            _shutdown(server, p, request)
            raise
    else:
        _shutdown(server, p, request)
    return 0


cdef int _take_request(object server, HookPlan *p, object sock) except -2:
    """Get one request through the plan and handle it.

    Returns -1 once a request was handled (or refused), else the errno of
    the OSError that getting it raised (0 when it carried none).
    """
    try:
        if p.get_request == ACCEPT:
            request, client_address = accept(sock)
        elif p.get_request == RECVFROM:
            data, client_address = recvfrom(sock, server.max_packet_size)
            request = (data, sock)
        else:
            request, client_address = server.get_request()
    except OSError as exc:
        return exc.errno or 0
    _handle_one(server, p, request, client_address)
    return -1


def handle_request_noblock(server, plan):
    """The stock ``_handle_request_noblock``: take one request and run it."""
    cdef HookPlan p = _read_plan(plan)
    _take_request(server, &p, plan.socket)
