# The declarations of util.pxi: what the fragments included after it may
# use (see csockserver._cengine.pxd).

cdef int _raise_errno(int err) except -1
cdef double _now() noexcept nogil
cdef int millis(double seconds) noexcept nogil
cdef double _earlier(double a, double b) noexcept nogil
cdef bint in_main_thread() except -1
cdef bint _backs_off(int err) except -1
cdef int _epoll_add(int epoll_fd, int fd, unsigned int events) except -1
cdef int _set_nonblocking(int fd, bint on) except -1
