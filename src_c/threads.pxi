# Thread dispatch: ThreadingMixIn's requests on reused worker threads, by
# handoff from the serving thread or by leader/followers on the listening
# socket.  csockserver/_pure/threads.py is the twin and its docstring
# explains the algorithm; here the waits and the accepts run in C with the
# GIL released.  The pool's counters, its stopping flag and its fds are
# guarded by the pool's own mutex (a PyMutex on 3.13+), not by the GIL: on
# a free-threaded interpreter the workers run truly at once.  The mutex is
# held only around C code, never around a Python call, a wait or a hook.
# server_close()'s part is shared with the pure engine (_engine.workers).


# Its fields (and the lock guarding each shared one) are declared in
# threads.pxd.
cdef class WorkerPool:
    """Worker threads serving one server: from a queue, and, for a crew of
    leader/followers, from the listening socket itself.  Used once:
    started, stopped, dropped."""

    def __cinit__(self):
        self.stop_fd = -1
        self.work_fd = -1
        self.epoll_fd = -1

    def __init__(self, server, plan=None, listener_socket=None):
        self.server = server
        if plan is not None:
            self.plan = _read_plan(plan)
        self.workers = _workers_of(server)
        self.queue = _deque()
        self.max_threads = _limit(server.max_threads)
        self.max_queued = _limit(server.max_queued)
        if self.max_queued >= 0:
            self.room = _Condition()
        idle = server.thread_idle_timeout
        self.idle_ms = -1 if idle is None else millis(max(0.0, float(idle)))
        self.yields_turn = (getattr(server, "socket_type", None)
                            == _socket.SOCK_STREAM)
        if listener_socket is not None:
            self.listener = _ListenSocket(listener_socket)
            self.listener_fd = self.listener.fd
            self.plan_socket = listener_socket
            self.take_kind = self.plan.get_request
        self.stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)
        if self.stop_fd < 0:
            _raise_errno(errno)
        self.work_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE)
        if self.work_fd < 0:
            _raise_errno(errno)
        self.epoll_fd = epoll_create1(EPOLL_CLOEXEC)
        if self.epoll_fd < 0:
            _raise_errno(errno)
        _epoll_add(self.epoll_fd, self.stop_fd, EPOLLIN)
        _epoll_add(self.epoll_fd, self.work_fd, EPOLLIN)
        if self.listener is not None:
            _epoll_add(self.epoll_fd, self.listener.fd, EPOLLIN | EPOLLONESHOT)
        if server.block_on_close:
            # socketserver creates this on the first request; so do we.
            server.__dict__.setdefault("_threads", _Threads())
        _retire_at_exit(self)

    def __dealloc__(self):
        self.close_fds()

    cdef void close_fds(self) noexcept:
        """Close the fds, once: the last worker and stop() may both try."""
        cdef int fds[3]
        cdef int i
        with self.lock:
            fds[0], fds[1], fds[2] = self.stop_fd, self.work_fd, self.epoll_fd
            self.stop_fd = self.work_fd = self.epoll_fd = -1
        for i in range(3):
            if fds[i] >= 0:
                close(fds[i])

    cdef bint is_stopping(self) noexcept:
        with self.lock:
            return self.stopping

    cdef void set_plan(self, HookPlan *plan) noexcept:
        with self.lock:
            if memcmp(&self.plan, plan, sizeof(HookPlan)) != 0:
                self.plan = plan[0]

    cdef void rearm(self) noexcept nogil:
        """Let the next waiter take from the listener (see _pure.threads)."""
        cdef epoll_event event
        event.events = EPOLLIN | EPOLLONESHOT
        event.data.fd = self.listener_fd
        epoll_ctl(self.epoll_fd, EPOLL_CTL_MOD, self.listener_fd, &event)

    # -- the serving side ------------------------------------------------

    cdef int submit(self, request, client_address) except -1:
        """Queue a request and make sure a worker will take it."""
        cdef uint64_t one = 1
        cdef bint grow = False
        item = (request, client_address)
        self.queue.append(item)
        with self.lock:
            if self.waiting > self.signalled:
                # Written under the lock: the woken worker is live, so the
                # fd stays open until the lock is released.
                self.signalled += 1
                write(self.work_fd, &one, sizeof(one))
            else:
                grow = self.reserve_worker()
        if grow:
            try:
                self.start_worker()
            except BaseException:
                try:
                    self.queue.remove(item)
                except ValueError:
                    return 0  # a worker took it meanwhile: it will run
                raise
        # else a busy worker takes it when it is done.
        if self.max_queued >= 0 and len(self.queue) >= self.max_queued:
            # Backpressure: the serving loop accepts nothing until the
            # queue is below max_queued again.
            with self.room:
                while self.queue and len(self.queue) >= self.max_queued:
                    self.room.wait()
        return 0

    cdef bint reserve_worker(self) noexcept:
        """Count one more live worker if max_threads allows (lock held);
        start_worker() must follow."""
        if self.max_threads >= 0 and self.live >= self.max_threads:
            return False
        self.live += 1
        self.starting += 1
        return True

    cdef int start_worker(self) except -1:
        """Start the worker that reserve_worker() counted."""
        thread = None
        try:
            thread = _Thread(target=self.process_request_thread)
            thread.daemon = self.server.daemon_threads
            _forget_ended(self.workers)
            self.workers[thread] = False
            thread.start()
        except BaseException:
            self.workers.pop(thread, None)
            self.retire_worker(True)
            raise
        return 0

    cdef int spawn(self) except -1:
        """Start one more worker, whatever max_threads says."""
        with self.lock:
            self.live += 1
            self.starting += 1
        return self.start_worker()

    cdef void retire_worker(self, bint fresh) noexcept:
        """One worker fewer (*fresh*: one that never waited); the last one
        out after stop() closes the fds."""
        cdef bint last
        with self.lock:
            self.live -= 1
            if fresh:
                self.starting -= 1
            last = self.stopping and self.live == 0
        if last:
            self.close_fds()

    def stop(self):
        """Let idle workers go; return once none can touch the listener."""
        cdef uint64_t one = 1
        cdef bint idle, done
        with self.lock:
            self.stopping = True
            if self.stop_fd >= 0:
                write(self.stop_fd, &one, sizeof(one))
        while True:
            with self.lock:
                idle = self.waiting == 0
                done = self.live == 0
            if idle:
                break
            with nogil:
                usleep(200)
            PyErr_CheckSignals()  # whatever happens, Ctrl-C still works
        if done:
            self.close_fds()

    # -- the worker side -------------------------------------------------

    # Named so that worker threads get socketserver's thread names,
    # "Thread-N (process_request_thread)".
    def process_request_thread(self):
        """A worker: run requests until stopped or idle for too long."""
        cdef _Worker w
        cdef HookPlan plan
        cdef bint survived, fresh = True
        me = _current_thread()
        w.buffer = NULL
        w.buffer_size = 0
        try:
            while True:
                item = self.next_request(&w, &fresh)
                if item is None:
                    break
                self.workers[me] = True
                with self.lock:
                    plan = self.plan   # submit() may set a new one meanwhile
                try:
                    survived = run_request(self.server, &plan,
                                           item[0], item[1])
                finally:
                    self.workers[me] = False
                item = None
                if not survived:
                    break
        finally:
            free(w.buffer)
            # Retiring: see _engine.workers.workers_of().
            self.workers[me] = False
            self.retire_worker(fresh)

    cdef object next_request(self, _Worker *w, bint *fresh):
        """The next (request, client_address) to run, or None to retire;
        *fresh* says whether this worker has yet to wait, once."""
        cdef bint timed_out, woken, grow, retire, others_busy
        while True:
            item = self.take_queued()
            if item is not None:
                return item
            with self.lock:
                if self.stopping:
                    return None
                self.waiting += 1
                if fresh[0]:
                    fresh[0] = False
                    self.starting -= 1
                # Counted as waiting meanwhile, so that a worker taking a
                # request does not start another on this one's account.
                others_busy = (self.yields_turn and self.live - self.waiting
                               - self.starting > 0)
            if others_busy:
                # Their turn first: a worker that never has to wait would
                # otherwise keep the CPU, and with it the GIL, from the
                # workers in the middle of a request (see _pure.threads).
                with nogil:
                    sched_yield()
            timed_out = woken = False
            item = None
            try:
                item = self.wait_for_work(w, &timed_out, &woken)
            finally:
                # Both counters in one step: submit() compares them.
                with self.lock:
                    self.waiting -= 1
                    if woken:
                        self.signalled -= 1
                    # A lonely worker about to run a request makes sure
                    # someone is waiting meanwhile; a crew keeps one worker
                    # however long it idles.
                    grow = (item is not None and self.waiting == 0
                            and self.starting == 0 and not self.stopping
                            and self.reserve_worker())
                    retire = (not self.stopping and (
                        self.listener is None or self.waiting > 0))
            if item is not None:
                if grow:
                    try:
                        self.start_worker()
                    except RuntimeError:
                        pass  # no thread to spare: serve this one anyway
                return item
            if timed_out and retire and not self.queue:
                return None  # idle for too long

    cdef object take_queued(self):
        """The oldest queued request, or None; another worker may empty
        the queue between the look and the take."""
        if not self.queue:
            return None
        try:
            item = self.queue.popleft()
        except IndexError:
            return None
        if self.room is not None:
            with self.room:
                self.room.notify()
        return item

    cdef object wait_for_work(self, _Worker *w, bint *timed_out, bint *woken):
        """Wait for a queued request or a new one on the listener; None
        means look again.  *timed_out* says whether the wait expired,
        *woken* whether it consumed a queue wake-up."""
        cdef epoll_event event
        cdef int n, err = 0
        cdef uint64_t value
        cdef bint took = False, stopping
        cdef bint eager = self.listener is not None
        if self.listener is not None:
            self.prepare_take(w)
        with nogil:
            if eager and self.take(w, &err):
                # A worker back from a request takes what is already
                # waiting without a wake-up (the token is not involved).
                n = -2
                took = True
            else:
                n = epoll_wait(self.epoll_fd, &event, 1, self.idle_ms)
            if n == -1:
                err = errno
            elif n == 1 and event.data.fd == self.work_fd:
                woken[0] = read(self.work_fd, &value,
                                sizeof(value)) == sizeof(value)
            elif n == 1 and event.data.fd == self.listener_fd:
                # This worker holds the listener until it re-arms it.
                with self.lock:
                    stopping = self.stopping
                if not stopping:
                    took = self.take(w, &err)
                if not took:
                    self.rearm()
        if took:
            if n != -2:
                # Holding the GIL, this request is as good as started: only
                # now may the next waiter take one, so at most one taken
                # request waits for the GIL at a time.
                self.rearm()
            return self.wrap_taken(w)
        if n == -1 and err != EINTR:
            _raise_errno(err)
        if n == 0:
            timed_out[0] = True
        elif _backs_off(err):
            # Out of fds or buffers: pause instead of spinning on the socket.
            self.pause(<int>(BACKOFF_MAX * 1000))
        # EAGAIN (another worker took it), or an error ignored as
        # socketserver ignores a failed get_request.
        return None

    cdef bint take(self, _Worker *w, int *err) noexcept nogil:
        """accept4() or recvfrom() without blocking; True if it got one."""
        w.length = sizeof(sockaddr_storage)
        memset(&w.addr, 0, sizeof(sockaddr_storage))
        if self.take_kind == ACCEPT:
            w.fd = accept4(self.listener_fd, <sockaddr *>&w.addr, &w.length,
                           SOCK_CLOEXEC)
            if w.fd >= 0:
                return True
        else:
            w.received = c_recvfrom(self.listener_fd, w.buffer,
                                    w.buffer_size, MSG_DONTWAIT,
                                    <sockaddr *>&w.addr, &w.length)
            if w.received >= 0:
                return True
        err[0] = errno
        return False

    cdef int prepare_take(self, _Worker *w) except -1:
        """Size the datagram buffer to max_packet_size as it is now."""
        cdef Py_ssize_t size
        if self.take_kind != RECVFROM:
            return 0
        size = max(0, <Py_ssize_t>self.server.max_packet_size)
        if w.buffer == NULL or w.buffer_size != size:
            free(w.buffer)
            w.buffer = <char *>malloc(max(1, size))
            w.buffer_size = size
            if w.buffer == NULL:
                w.buffer_size = 0
                raise MemoryError()
        return 0

    cdef object wrap_taken(self, _Worker *w):
        """(request, client_address) for what take() got."""
        if self.take_kind == ACCEPT:
            return self.listener.wrap(w.fd, &w.addr, w.length)
        data = PyBytes_FromStringAndSize(w.buffer, w.received)
        return ((data, self.plan_socket), _address(&w.addr, w.length))

    cdef void pause(self, int wait_ms) noexcept:
        cdef pollfd pfd
        pfd.fd = self.stop_fd
        pfd.events = POLLIN
        pfd.revents = 0
        with nogil:
            poll(&pfd, 1, wait_ms)


cdef Py_ssize_t _limit(value) except -2:
    if value is None:
        return -1
    return max(0, <Py_ssize_t>value)


cdef bint run_request(object server, HookPlan *p, object request,
                      object client_address) except -1:
    """Run one request as socketserver's request thread does.

    Returns False when an exception escaped the request: it is reported
    through threading.excepthook and the worker ends, as the thread would.
    """
    context = PyContext_New()
    PyContext_Enter(context)
    try:
        if p.proxy_protocol and reads_header_later(p):
            client_address = client_address_of(server, p, request,
                                               client_address)
            if client_address is None:
                shutdown_request(server, p, request)
                return True
        if p.process_request_thread == PYTHON:
            server.process_request_thread(request, client_address)
        else:
            try:
                finish_request(server, p, request, client_address)
            except Exception as exc:
                report_error(server, p, request, client_address, exc)
            finally:
                shutdown_request(server, p, request)
    except BaseException as exc:
        _report_escaped(exc)
        return False
    finally:
        PyContext_Exit(context)
    return True


cdef int _report_escaped(exc) except -1:
    try:
        _threading.excepthook(_threading.ExceptHookArgs(
            [type(exc), exc, exc.__traceback__, _current_thread()]))
    except Exception:
        pass  # as threading does when the hook itself fails
    return 0


cdef int _start_thread_request(object server, HookPlan *p, object request,
                               object client_address) except -1:
    cdef WorkerPool pool = server.__dict__.get(_POOL)
    if pool is None or pool.is_stopping():
        pool = WorkerPool(server)
        setattr(server, _POOL, pool)
    pool.set_plan(p)
    return pool.submit(request, client_address)


def start_thread_request(server, plan, request, client_address):
    """ThreadingMixIn's stock process_request: hand over to a worker."""
    cdef HookPlan p = _read_plan(plan)
    _start_thread_request(server, &p, request, client_address)


cdef bint leads_on_workers(HookPlan *p, object sock) except -1:
    """Whether serve_forever() can let the workers take requests."""
    return (p.process_request == THREAD
            and (p.get_request == ACCEPT or p.get_request == RECVFROM)
            and p.verify_request == ALLOW
            and p.handle_request_noblock == TAKE_ONE
            and p.service_actions == NO_ACTIONS
            and sock is not None)


cdef int wait_for_stop(object server, Waker waker) except -1:
    """Sleep until the server's stop flag is set, acting on signals."""
    cdef pollfd pfd
    cdef int n, err
    cdef int cap = millis(SIGNAL_CHECK_INTERVAL) if in_main_thread() else -1
    pfd.fd = waker.current_fd()
    pfd.events = POLLIN
    while not getattr(server, _STOP):
        if cap >= 0:
            PyErr_CheckSignals()    # as serve_forever() before its waits
            if getattr(server, _STOP):
                break
        pfd.revents = 0
        with nogil:
            n = poll(&pfd, 1, cap)
            err = errno
        if n <= 0:
            if n < 0 and err != EINTR:
                _raise_errno(err)
            # Also on a timeout: a signal may have landed just before poll().
            PyErr_CheckSignals()
        else:
            waker.drain()
    return 0


cdef int serve_forever_on_workers(object server, object plan,
                                  Waker waker) except -1:
    """serve_forever() for a leader/followers crew (see _pure.threads)."""
    sock = plan.socket
    cdef WorkerPool crew = WorkerPool(server, plan, sock)
    cdef int fd = crew.listener.fd
    cdef bint was_blocking = False
    setattr(server, _CREW, crew)
    # Several workers may wake for one connection: the losers must get
    # EAGAIN, not block, so the socket is non-blocking while they lead.
    if crew.take_kind == ACCEPT:
        was_blocking = (csock_get_status_flags(fd) & O_NONBLOCK) == 0
        if was_blocking:
            _set_nonblocking(fd, True)
    try:
        crew.spawn()
        wait_for_stop(server, waker)
    finally:
        crew.stop()
        if was_blocking and sock.fileno() == fd:
            _set_nonblocking(fd, False)
        if server.__dict__.get(_CREW) is crew:
            delattr(server, _CREW)
    return 0
