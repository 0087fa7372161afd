# The waker: an eventfd another thread writes to, to interrupt a wait.
# The serving loop (loop.pxi), the worker pools (threads.pxi) and
# PreforkMixIn's supervisor each wait on one.
# csockserver/_pure/waker.py is the twin.

# Its fields (and the lock guarding each shared one) are declared in
# waker.pxd.
cdef class Waker:
    """An eventfd that lets another thread interrupt the serving loop.

    wake() may run in any thread, at any time, close() included: the fd is
    used and forgotten under a mutex, so a wake() can never write to an fd
    number that close() already freed (and the system maybe reused).  No
    Python code runs while the mutex is held, so a signal handler calling
    wake() cannot find it held by its own thread.
    """

    def __cinit__(self):
        self.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)
        if self.fd < 0:
            _raise_errno(errno)

    cdef int current_fd(self) noexcept:
        with self.lock:
            return self.fd

    def fileno(self):
        return self.current_fd()

    def wake(self):
        cdef uint64_t one = 1
        with self.lock:
            if self.fd >= 0:
                write(self.fd, &one, sizeof(one))  # EAGAIN: already awake

    def drain(self):
        cdef uint64_t value
        with self.lock:
            if self.fd >= 0:
                read(self.fd, &value, sizeof(value))

    def close(self):
        cdef int fd
        with self.lock:
            fd, self.fd = self.fd, -1
        if fd >= 0:
            close(fd)

    def __dealloc__(self):
        if self.fd >= 0:
            close(self.fd)
