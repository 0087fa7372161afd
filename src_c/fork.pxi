# Fork dispatch: ForkingMixIn's requests in child processes, each child
# watched through a pidfd so it is reaped as soon as it exits and only our
# own children are ever waited for.  csockserver/_pyfork.py is the twin and
# its docstring explains the choices.

cdef enum:
    REAPER_EVENTS = 64          # exited children picked up per epoll_wait

# How often a wait for a free child slot re-checks without pidfds (µs).
cdef int NO_PIDFD_POLL_US = 10000


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
    """os.fork(), with the interpreter's fork hooks (for the prefork mix-in)."""
    return _fork()


cdef class Reaper:
    """pidfds of one server's children, in an epoll set the loop can watch."""
    cdef int epoll_fd
    cdef dict pidfds                # pid -> pidfd
    cdef readonly bint works        # False once pidfd_open is unavailable

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
        cdef int millis = -1 if timeout is None else _millis(timeout)
        if not self.pidfds:
            return []
        while True:
            with nogil:
                n = epoll_wait(self.epoll_fd, events, REAPER_EVENTS, millis)
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


cdef Reaper _reaper_of(server):
    reaper = server.__dict__.get("_csock_reaper")
    if reaper is None:
        reaper = Reaper()
        server._csock_reaper = reaper
    return reaper


cdef int _fork_request(object server, HookPlan *p, object request,
                       object client_address) except -1:
    """ForkingMixIn's stock process_request."""
    cdef int status = 1
    cdef pid_t pid = _fork()
    if pid:
        if server.active_children is None:
            server.active_children = set()
        server.active_children.add(pid)
        _reaper_of(server).watch(pid)
        _close_request(server, p, request)
        return 0
    # In the child: never return into the serving loop.
    try:
        if p.finish_request == STOCK:
            server.RequestHandlerClass(request, client_address, server)
        else:
            server.finish_request(request, client_address)
        status = 0
    except Exception:
        server.handle_error(request, client_address)
    finally:
        try:
            _shutdown(server, p, request)
        finally:
            _exit(status)
    return 0


def fork_request(server, plan, request, client_address):
    """ForkingMixIn's stock process_request."""
    cdef HookPlan p = _read_plan(plan)
    _fork_request(server, &p, request, client_address)


cdef int _reap(object server, Reaper reaper, pid_t pid, int flags) except -1:
    """waitpid() one of our children; forget it once it is gone."""
    cdef int status, err
    cdef pid_t done
    while True:
        with nogil:
            done = waitpid(pid, &status, flags)
            err = errno
        if done >= 0 or err != EINTR:
            break
        PyErr_CheckSignals()
    if done < 0:
        if err != ECHILD:
            return 0
        done = pid  # already reaped elsewhere: nothing left to wait for
    if done:
        server.active_children.discard(pid)
        reaper.forget(pid)
    return 0


cdef int _reap_exited(object server) except -1:
    """Reap the children that have exited, without waiting."""
    children = server.active_children
    if not children:
        return 0
    cdef Reaper reaper = _reaper_of(server)
    for pid in reaper.exited():
        _reap(server, reaper, pid, WNOHANG)
    for pid in [pid for pid in children if pid not in reaper.pidfds]:
        _reap(server, reaper, pid, WNOHANG)
    return 0


def collect_children(server, bint blocking=False):
    """ForkingMixIn's stock collect_children, waiting only for our own pids.

    While ``max_children`` are alive, waits for one of them to exit; then
    reaps those that have exited (all of them, waiting, with *blocking*).
    """
    children = server.active_children
    if children is None:
        return
    cdef Reaper reaper = _reaper_of(server)
    while children and len(children) >= server.max_children:
        if reaper.covers(children):
            for pid in reaper.exited(None):
                _reap(server, reaper, pid, WNOHANG)
        else:
            _reap_exited(server)
            if len(children) >= server.max_children:
                with nogil:
                    usleep(NO_PIDFD_POLL_US)
                PyErr_CheckSignals()
    if blocking:
        for pid in list(children):
            _reap(server, reaper, pid, 0)
    else:
        _reap_exited(server)


def release_reaper(server):
    """Close the reaper once no child is left to watch (server_close)."""
    if not server.active_children:
        reaper = server.__dict__.pop("_csock_reaper", None)
        if reaper is not None:
            reaper.close()
