# Fork dispatch: ForkingMixIn's requests in child processes, each child
# watched through a pidfd so it is reaped as soon as it exits.  The reaping
# itself runs once per child and is shared with the pure engine
# (_engine.children.Children, over this file's Reaper); here are the fork
# and the pidfd set.  csockserver/_pure/fork.py is the twin.


cdef pid_t _fork() except -1:
    """fork() wrapped in the interpreter's hooks, as os.fork() does."""
    cdef pid_t pid
    cdef int err
    PyOS_BeforeFork()
    pid = fork()
    err = errno
    if pid == 0:
        PyOS_AfterFork_Child()
    else:
        PyOS_AfterFork_Parent()
        if pid < 0:
            _raise_errno(err)
    return pid


def fork_process():
    """os.fork(), with the interpreter's fork hooks (for PreforkMixIn)."""
    return _fork()


# Its fields (and the lock guarding each shared one) are declared in
# fork.pxd.
cdef class Reaper:
    """pidfds of one server's children, in an epoll set the loop can watch.

    pidfd_open is called directly, so pidfds work on every Python version
    (os.pidfd_open is 3.9+).
    """

    def __cinit__(self):
        self.pidfds = {}
        self.works = True
        self.epoll_fd = epoll_create1(EPOLL_CLOEXEC)
        if self.epoll_fd < 0:
            _raise_errno(errno)

    def __dealloc__(self):
        self.close()

    def close(self):
        for fd in self.pidfds.values():
            close(fd)
        self.pidfds.clear()
        if self.epoll_fd >= 0:
            close(self.epoll_fd)
            self.epoll_fd = -1

    def fileno(self):
        return self.epoll_fd

    def watch(self, pid_t pid):
        """Start watching child *pid*; False when it cannot be watched."""
        cdef int fd
        if not self.works:
            return False
        fd = syscall(SYS_pidfd_open, pid, 0)
        if fd < 0:
            if errno in (ENOSYS, EPERM):
                self.works = False   # no pidfds here: poll, as socketserver
            return False             # e.g. EMFILE: this one child is polled
        self.pidfds[pid] = fd
        try:
            _epoll_add(self.epoll_fd, fd, EPOLLIN)
        except BaseException:
            self.forget(pid)
            raise
        return True

    def forget(self, pid):
        fd = self.pidfds.pop(pid, None)
        if fd is not None:
            epoll_ctl(self.epoll_fd, EPOLL_CTL_DEL, fd, NULL)
            close(fd)

    def exited(self, timeout=0):
        """Pids whose pidfd says they exited, waiting up to *timeout* s."""
        cdef epoll_event events[REAPER_EVENTS]
        cdef int n, i, err
        cdef int wait_ms = -1 if timeout is None else millis(timeout)
        if not self.pidfds:
            return []
        while True:
            with nogil:
                n = epoll_wait(self.epoll_fd, events, REAPER_EVENTS, wait_ms)
                err = errno
            if n >= 0:
                break
            if err != EINTR:
                _raise_errno(err)
            PyErr_CheckSignals()
        ready = set()
        for i in range(n):
            ready.add(events[i].data.fd)
        return [pid for pid, fd in self.pidfds.items() if fd in ready]

    def covers(self, pids):
        return all(pid in self.pidfds for pid in pids)


cdef object _children = _Children(Reaper)
collect_children = _children.collect_children
release_reaper = _children.release_reaper


cdef int _fork_request(object server, HookPlan *p, object request,
                       object client_address) except -1:
    """ForkingMixIn's stock process_request."""
    cdef int status = 1
    cdef pid_t pid = _fork()
    if pid:
        if server.active_children is None:
            server.active_children = set()
        server.active_children.add(pid)
        _children.reaper_of(server).watch(pid)
        close_request(server, p, request)
        return 0
    # In the child: never return into the serving loop.
    try:
        if p.proxy_protocol and reads_header_later(p):
            client_address = client_address_of(server, p, request,
                                               client_address)
        if client_address is not None:
            finish_request(server, p, request, client_address)
        status = 0
    except Exception as exc:
        report_error(server, p, request, client_address, exc)
    finally:
        try:
            shutdown_request(server, p, request)
        finally:
            _exit(status)
    return 0


def fork_request(server, plan, request, client_address):
    """ForkingMixIn's stock process_request."""
    cdef HookPlan p = _read_plan(plan)
    _fork_request(server, &p, request, client_address)
