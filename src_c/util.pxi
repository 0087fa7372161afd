# Helpers every part of the engine uses: errors, the clock, poll() timeouts,
# fd flags.  csockserver/_pure/util.py is the twin of what has one.


cdef int _raise_errno(int err) except -1:
    """Raise OSError for *err*; OSError picks the subclass (EAGAIN...)."""
    raise OSError(err, _os_strerror(err))


cdef double _now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef int millis(double seconds) noexcept nogil:
    """A poll() timeout: -1 for 'no limit', rounded up so it is not a spin."""
    if seconds < 0:
        return -1
    if seconds > 2000000.0:
        return 2000000000
    return <int>ceil(seconds * 1e3)


cdef double _earlier(double a, double b) noexcept nogil:
    """The smaller of two waits, where a negative wait means 'no limit'."""
    if a < 0:
        return b
    if b < 0:
        return a
    return a if a < b else b


cdef bint in_main_thread() except -1:
    """Whether signal handlers run in this thread (so waits must wake)."""
    return _threading.get_ident() == _threading.main_thread().ident


cdef bint _backs_off(int err) except -1:
    """Whether a failed accept/recvfrom means: pause before the next one."""
    return err in BACKOFF_ERRNOS


cdef int _epoll_add(int epoll_fd, int fd, unsigned int events) except -1:
    cdef epoll_event event
    event.events = events
    event.data.fd = fd
    if epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event) < 0:
        _raise_errno(errno)
    return 0


cdef int _set_nonblocking(int fd, bint on) except -1:
    cdef int flags = csock_get_status_flags(fd)
    if flags < 0:
        _raise_errno(errno)
    flags = (flags | O_NONBLOCK) if on else (flags & ~O_NONBLOCK)
    if csock_set_status_flags(fd, flags) < 0:
        _raise_errno(errno)
    return 0
