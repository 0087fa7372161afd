# The declarations of transport.pxi: what the fragments included after it may
# use (see csockserver._cengine.pxd).

cdef object _address(sockaddr_storage *addr, socklen_t length)

cdef class _ListenSocket:
    cdef object sock
    cdef object family, type, proto
    cdef int fd
    cdef bint nonblocking
    cdef int read_blocking_mode(self) except -1
    cdef object wrap(self, int fd, sockaddr_storage *addr, socklen_t length)

cdef object _accept_blocking(_ListenSocket listener)
