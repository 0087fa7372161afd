# The declarations of streams.pxi: what the fragments included after it may
# use (see csockserver._cengine.pxd).

cdef enum:
    # _recv_some's results besides a byte count (0 is end of file).
    WOULD_BLOCK = -2    # a non-blocking socket (timeout 0.0) had no data
    TIMED_OUT = -3      # the socket's timeout passed first

cdef int _wait_for(int fd, short events, double deadline) except -1
cdef Py_ssize_t _recv_some(object sock, char *into, Py_ssize_t n,
                           double read_deadline) except -1

cdef int _send_all(object sock, const char *data, Py_ssize_t n) except -1

cdef class SocketReader:
    cdef object _sock
    cdef char *_buf
    cdef Py_ssize_t _size          # bytes allocated at _buf
    cdef Py_ssize_t _pos, _end     # unread data is _buf[_pos:_end]
    cdef Py_ssize_t _chunk         # one refill's size
    cdef Py_ssize_t _keep          # a bigger empty buffer is given back
    # _closed, _timed_out, _deadline and _owner are also read without the
    # lock (a property, a fast path): always through atomics.
    cdef int _closed
    cdef int _timed_out            # makefile()'s reader refuses to go on
    cdef double _deadline          # a _now() time; negative for none
    cdef PyThread_type_lock _lock  # one reading thread at a time
    cdef unsigned long _owner
    cdef object __weakref__
    cdef int _enter(self) except -1
    cdef inline void _leave(self) noexcept
    cdef inline int _check_open(self, str message) except -1
    cdef int _reserve(self, Py_ssize_t extra) except -1
    cdef void _release_spare(self) noexcept
    cdef Py_ssize_t _recv_into(self, char *into, Py_ssize_t n) except -1
    cdef Py_ssize_t _fill(self) except -1
    cdef object _take(self, Py_ssize_t n)
    cdef object _readline(self, Py_ssize_t limit)
    cdef object _read_all(self)
    cdef object _read(self, Py_ssize_t n)
    cdef Py_ssize_t _copy_into(self, char *out, Py_ssize_t n,
                               bint until_full) except -1
    cdef object _readinto(self, object buffer, bint until_full, str name)
