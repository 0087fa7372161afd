# The declarations of waker.pxi: what the fragments included after it may
# use (see csockserver._cengine.pxd).

cdef class Waker:
    cdef cython.pymutex lock
    cdef int fd
    cdef int current_fd(self) noexcept
