# The declarations of loop.pxi: what the fragments included after it may
# use (see csockserver._cengine.pxd).

cdef enum:
    ACCEPT_BATCH = 16          # connections taken per wake-up at most
    DATAGRAM_BATCH = 8         # datagrams taken per wake-up at most
    DATAGRAM_BATCH_BYTES = 262144

cdef struct _Accepted:
    int fd
    socklen_t length
    sockaddr_storage addr

cdef class _DatagramBuffer:
    cdef char *data
    cdef Py_ssize_t slot
    cdef int slots
    cdef ssize_t lengths[DATAGRAM_BATCH]
    cdef socklen_t address_lengths[DATAGRAM_BATCH]
    cdef sockaddr_storage addresses[DATAGRAM_BATCH]
    cdef int fit(self, Py_ssize_t slot) except -1

cdef int _accept_batch(int listen_fd, bint nonblocking, _Accepted *out,
                       int limit, int *err) noexcept nogil

cdef int _recv_batch(int fd, _DatagramBuffer buf, int *err) noexcept nogil

cdef class _Loop:
    cdef object server
    cdef object plan_socket
    cdef HookPlan plan
    cdef _ListenSocket listener     # set when connections are batched
    cdef _DatagramBuffer datagrams  # set when datagrams are batched
    cdef _Accepted conns[ACCEPT_BATCH]
    cdef int pending               # conns[0:pending] not yet handed over
    cdef int handle_accepted(self, int count) except -1
    cdef int handle_datagrams(self, int count) except -1
    cdef bint between_requests(self) except -1
    cdef void close_pending(self) noexcept

cdef int handle_one(object server, HookPlan *p, object request,
                    object client_address) except -1

cdef int take_request(object server, HookPlan *p, object sock) except -2
cdef int _handle_accepted(object server, HookPlan *p, _ListenSocket listener,
                          _Accepted *conn) except -1

cdef int serve_polling(object server, object plan, int fd,
                       object poll_interval, Waker waker) except -1
