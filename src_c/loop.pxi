# The serving loops: serve_forever() and handle_request().  serve_forever()
# is where every dispatch mode starts: a ThreadingMixIn server with stock
# hooks goes to its crew of workers (threads.pxi), any other to
# serve_polling.  The loops here wait in poll() with the GIL released, on
# the server's fd and (for serve_forever) the waker's, and take several
# ready connections or datagrams per wake-up when the stock get_request is
# in use.  Each request then goes through
# handle_one: its PROXY header if the server takes one (proxy.pxi, which
# says when that is read later, where the request runs), verify_request,
# then process_request, which runs it in place (requests.pxi), on a worker
# thread (threads.pxi) or in a child (fork.pxi).
# csockserver/_pure/loop.py is the twin.


# Its fields (and the lock guarding each shared one) are declared in
# loop.pxd.
cdef class _DatagramBuffer:
    """Room for a batch of datagrams of up to max_packet_size bytes each."""

    cdef int fit(self, Py_ssize_t slot) except -1:
        cdef int slots
        if slot == self.slot and self.data != NULL:
            return 0
        slots = DATAGRAM_BATCH_BYTES // slot if slot > 0 else DATAGRAM_BATCH
        slots = max(1, min(DATAGRAM_BATCH, slots))
        free(self.data)
        self.data = <char *>malloc(max(1, slot * slots))
        if self.data == NULL:
            self.slot = 0
            raise MemoryError()
        self.slot = slot
        self.slots = slots
        return 0

    def __dealloc__(self):
        free(self.data)


cdef int _accept_batch(int listen_fd, bint nonblocking, _Accepted *out,
                       int limit, int *err) noexcept nogil:
    """Accept up to *limit* pending connections; return how many."""
    cdef int count = 0
    cdef int fd
    cdef pollfd probe
    err[0] = 0
    while count < limit:
        if count > 0 and not nonblocking:
            # A blocking accept4() would wait for a connection that is not
            # there: look first.  (The socket's blocking mode is the user's.)
            probe.fd = listen_fd
            probe.events = POLLIN
            probe.revents = 0
            if poll(&probe, 1, 0) <= 0:
                break
        out[count].length = sizeof(sockaddr_storage)
        memset(&out[count].addr, 0, sizeof(sockaddr_storage))
        fd = accept4(listen_fd, <sockaddr *>&out[count].addr,
                     &out[count].length, SOCK_CLOEXEC)
        if fd < 0:
            err[0] = errno
            break
        out[count].fd = fd
        count += 1
    return count


cdef int _recv_batch(int fd, _DatagramBuffer buf, int *err) noexcept nogil:
    """Receive up to buf.slots waiting datagrams without blocking."""
    cdef int count = 0
    cdef ssize_t received
    err[0] = 0
    while count < buf.slots:
        buf.address_lengths[count] = sizeof(sockaddr_storage)
        memset(&buf.addresses[count], 0, sizeof(sockaddr_storage))
        received = c_recvfrom(fd, buf.data + count * buf.slot, buf.slot,
                              MSG_DONTWAIT,
                              <sockaddr *>&buf.addresses[count],
                              &buf.address_lengths[count])
        if received < 0:
            err[0] = errno
            break
        buf.lengths[count] = received
        count += 1
    return count


# Its fields (and the lock guarding each shared one) are declared in
# loop.pxd.
cdef class _Loop:
    """serve_forever()'s state for one call: the plan and what it drives."""

    cdef int handle_accepted(self, int count) except -1:
        """Hand each accepted connection to the request path, in order."""
        cdef int i
        for i in range(count):
            if i > 0 and self.between_requests():
                return 1
            _handle_accepted(self.server, &self.plan, self.listener,
                             &self.conns[i])
        return 0

    cdef int handle_datagrams(self, int count) except -1:
        cdef int i
        cdef _DatagramBuffer buf = self.datagrams
        for i in range(count):
            if i > 0 and self.between_requests():
                return 1
            data = PyBytes_FromStringAndSize(buf.data + i * buf.slot,
                                             buf.lengths[i])
            address = _address(&buf.addresses[i], buf.address_lengths[i])
            handle_one(self.server, &self.plan, (data, self.plan_socket),
                       address)
        return 0

    cdef bint between_requests(self) except -1:
        """socketserver's loop runs service_actions after each request and
        then looks at the shutdown flag; do the same inside a batch."""
        if self.plan.service_actions == PYTHON:
            self.server.service_actions()
        elif self.plan.service_actions == REAP:
            _children.collect_children(self.server)
        return bool(getattr(self.server, _STOP))

    cdef void close_pending(self) noexcept:
        cdef int i
        for i in range(self.pending):
            if self.conns[i].fd >= 0:
                close(self.conns[i].fd)
                self.conns[i].fd = -1
        self.pending = 0


cdef int handle_one(object server, HookPlan *p, object request,
                    object client_address) except -1:
    """What the stock _handle_request_noblock does once it has a request:
    verify_request, then process_request, which picks where it runs."""
    if p.proxy_protocol and not reads_header_later(p):
        client_address = client_address_of(server, p, request, client_address)
        if client_address is None:
            shutdown_request(server, p, request)
            return 0
    if (p.verify_request == ALLOW
            or server.verify_request(request, client_address)):
        try:
            if p.process_request == THREAD:
                _start_thread_request(server, p, request, client_address)
            elif p.process_request == FORK:
                _fork_request(server, p, request, client_address)
            elif p.process_request == IN_PLACE:
                finish_request(server, p, request, client_address)
                shutdown_request(server, p, request)
            else:
                server.process_request(request, client_address)
        except Exception as exc:
            report_error(server, p, request, client_address, exc)
            shutdown_request(server, p, request)
        except BaseException:
            shutdown_request(server, p, request)
            raise
    else:
        shutdown_request(server, p, request)
    return 0


cdef int take_request(object server, HookPlan *p, object sock) except -2:
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
    handle_one(server, p, request, client_address)
    return -1


def handle_request_noblock(server, plan):
    """The stock ``_handle_request_noblock``: take one request and run it."""
    cdef HookPlan p = _read_plan(plan)
    take_request(server, &p, plan.socket)


cdef int _handle_accepted(object server, HookPlan *p, _ListenSocket listener,
                          _Accepted *conn) except -1:
    """Wrap a connection accept4() took and run it through handle_one."""
    cdef int fd = conn.fd
    conn.fd = -1  # wrap() owns it now, even if it fails
    request, client_address = listener.wrap(fd, &conn.addr, conn.length)
    return handle_one(server, p, request, client_address)


def serve_forever(server, plan, int fd, poll_interval, Waker waker):
    """Serve until the server's stop flag is set; the caller resets it.

    Every dispatch mode starts here.  A ThreadingMixIn server whose hooks
    are all stock is served by its crew of workers, which take requests
    off the socket themselves (threads.pxi); every other server by
    serve_polling.
    """
    cdef HookPlan p = _read_plan(plan)
    if leads_on_workers(&p, plan.socket):
        serve_forever_on_workers(server, plan, waker)
    else:
        serve_polling(server, plan, fd, poll_interval, waker)


cdef int serve_polling(object server, object plan, int fd,
                       object poll_interval, Waker waker) except -1:
    """The poll loop: wait for the socket (or the waker, or children),
    take what is ready and run it through handle_one."""
    cdef _Loop loop = _Loop()
    cdef pollfd fds[3]
    cdef int n, err, count, failed, nfds = 2
    cdef Reaper reaper = None
    cdef double interval = -1.0, deadline = 0.0, wait, now
    cdef double backoff = 0.0, backoff_until = 0.0
    cdef double cap = SIGNAL_CHECK_INTERVAL if in_main_thread() else -1.0
    cdef bint calls_service_actions, listening, readable
    cdef bint batch_accept = False, batch_recv = False
    cdef Py_ssize_t slot

    loop.server = server
    loop.plan = _read_plan(plan)
    loop.plan_socket = plan.socket
    # ForkingMixIn's children are reaped as their pidfds fire; without
    # pidfds, by its service_actions every poll_interval.
    if loop.plan.collect_children == REAP_OWN:
        reaper = _children.reaper_of(server)
        if reaper.works:
            fds[2].fd = reaper.epoll_fd
            fds[2].events = POLLIN
            nfds = 3
        else:
            reaper = None
    calls_service_actions = (
        loop.plan.service_actions == PYTHON
        or (loop.plan.service_actions == REAP and reaper is None))
    if (loop.plan.handle_request_noblock == TAKE_ONE
            and plan.socket is not None):
        if loop.plan.get_request == ACCEPT:
            loop.listener = _ListenSocket(plan.socket)
            loop.listener.read_blocking_mode()
            batch_accept = True
        elif loop.plan.get_request == RECVFROM:
            loop.listener = _ListenSocket(plan.socket)
            loop.datagrams = _DatagramBuffer()
    if calls_service_actions and poll_interval is not None:
        interval = max(0.0, float(poll_interval))
        deadline = _now() + interval

    fds[0].fd = fd
    fds[0].events = POLLIN | POLLPRI
    fds[1].fd = waker.current_fd()
    fds[1].events = POLLIN

    while not getattr(server, _STOP):
        if cap >= 0:
            # In the main thread, the handlers of signals caught while
            # Python ran, before a wait they would not interrupt (they need
            # an explicit look where the interpreter fails to run them:
            # see _engine.timing.run_signal_handlers).
            PyErr_CheckSignals()
            if getattr(server, _STOP):
                break
        now = _now()
        if backoff_until and now >= backoff_until:
            backoff_until = 0.0
        listening = backoff_until == 0.0
        wait = max(0.0, deadline - now) if interval >= 0 else -1.0
        wait = _earlier(wait, cap)
        if not listening:
            wait = _earlier(wait, backoff_until - now)
        # Datagram batches use max_packet_size as it is now, as recvfrom would.
        batch_recv = False
        if loop.datagrams is not None:
            slot = server.max_packet_size
            if slot >= 0:
                loop.datagrams.fit(slot)
                batch_recv = True
        fds[0].revents = 0
        fds[1].revents = 0
        fds[2].revents = 0
        count = 0
        err = 0
        with nogil:
            if listening:
                n = poll(fds, nfds, millis(wait))
            else:
                n = poll(&fds[1], nfds - 1, millis(wait))
            err = errno
            if n > 0 and listening and fds[0].revents:
                if batch_accept:
                    count = _accept_batch(loop.listener.fd,
                                          loop.listener.nonblocking,
                                          loop.conns, ACCEPT_BATCH, &err)
                elif batch_recv:
                    count = _recv_batch(loop.listener.fd, loop.datagrams, &err)
        if batch_accept:
            loop.pending = count  # owned fds, closed if not handed over
        try:
            if n < 0:
                if err != EINTR:
                    _raise_errno(err)
                PyErr_CheckSignals()
                continue
            if n == 0:
                # A signal that landed between the flag check and poll()
                # did not interrupt it: its handler runs now, at the latest
                # on the SIGNAL_CHECK_INTERVAL wake-up.
                PyErr_CheckSignals()
            if getattr(server, _STOP):
                break
            if fds[1].revents:
                waker.drain()
            if nfds == 3 and fds[2].revents:
                _children.reap_exited(server)
            readable = listening and fds[0].revents != 0
            if n == 0 and (interval < 0 or _now() < deadline):
                # Only the signal backstop or the back-off timer expired:
                # not an iteration socketserver would have made.
                continue
            if readable:
                failed = -1
                if batch_accept or batch_recv:
                    if count == 0:
                        if err == EINTR:
                            PyErr_CheckSignals()
                        failed = err
                    elif batch_accept and loop.handle_accepted(count):
                        break
                    elif batch_recv and loop.handle_datagrams(count):
                        break
                elif loop.plan.handle_request_noblock == TAKE_ONE:
                    failed = take_request(server, &loop.plan,
                                          loop.plan_socket)
                else:
                    server._handle_request_noblock()
                if failed >= 0 and _backs_off(failed):
                    # Out of fds or buffers: stop watching the socket for a
                    # while instead of spinning on an accept that fails.
                    backoff = min(BACKOFF_MAX, backoff * 2 or BACKOFF_FIRST)
                    backoff_until = _now() + backoff
                elif failed < 0:
                    backoff = 0.0
            if calls_service_actions:
                server.service_actions()
                if interval >= 0:
                    deadline = _now() + interval
            elif readable and loop.plan.service_actions == REAP:
                # What ForkingMixIn.service_actions does after a request:
                # wait while max_children are alive, reap the ones done.
                _children.collect_children(server)
        finally:
            loop.close_pending()
    return 0


def handle_request(server, plan, int fd, timeout):
    """Wait up to *timeout* seconds for a request; handle it or time out."""
    cdef HookPlan p = _read_plan(plan)
    cdef pollfd pfd
    cdef _Accepted conn
    cdef _ListenSocket listener = None
    cdef int n, err, count = 0
    cdef double remaining = -1.0, deadline = 0.0
    cdef double cap = SIGNAL_CHECK_INTERVAL if in_main_thread() else -1.0
    cdef bint has_timeout = timeout is not None
    if (p.handle_request_noblock == TAKE_ONE and p.get_request == ACCEPT
            and plan.socket is not None):
        # Accept in the same GIL release as the wait.
        listener = _ListenSocket(plan.socket)
    if has_timeout:
        remaining = float(timeout)
        deadline = _now() + remaining
    pfd.fd = fd
    pfd.events = POLLIN | POLLPRI
    while True:
        pfd.revents = 0
        with nogil:
            n = poll(&pfd, 1, millis(_earlier(
                max(0.0, remaining) if has_timeout else -1.0, cap)))
            err = errno
            if n > 0 and listener is not None:
                count = _accept_batch(listener.fd, False, &conn, 1, &err)
        if n <= 0:
            if n < 0 and err != EINTR:
                _raise_errno(err)
            # Also on a timeout: a signal may have landed just before poll().
            PyErr_CheckSignals()
        elif n > 0 and listener is not None:
            if count:
                _handle_accepted(server, &p, listener, &conn)
            elif err == EINTR:
                PyErr_CheckSignals()
            return None  # a failed accept ends the call, as in socketserver
        elif n > 0:
            if p.handle_request_noblock == TAKE_ONE:
                take_request(server, &p, plan.socket)
                return None
            return server._handle_request_noblock()
        if has_timeout:
            remaining = deadline - _now()
            if remaining < 0:
                if p.handle_timeout == NO_TIMEOUT_ACTION:
                    return None
                return server.handle_timeout()
