# The declarations of threads.pxi: what the fragments included after it may
# use (see csockserver._cengine.pxd).

cdef struct _Worker:
    char *buffer            # datagram buffer (crews on a datagram socket)
    Py_ssize_t buffer_size
    # What the last take got: an accepted fd, or a datagram's length.
    int fd
    ssize_t received
    sockaddr_storage addr
    socklen_t length

cdef class WorkerPool:
    cdef object server
    cdef HookPlan plan
    cdef _ListenSocket listener      # a crew's socket, or None
    cdef object plan_socket
    cdef int take_kind              # ACCEPT or RECVFROM for a crew
    cdef int listener_fd
    cdef dict workers               # _engine.workers.workers_of(server)
    cdef object queue
    cdef object room                # Condition, only with max_queued
    cdef Py_ssize_t max_threads, max_queued     # -1: no limit
    cdef int idle_ms                # -1: never retire
    cdef bint yields_turn           # a stream server's: see next_request
    # Guarded by `lock`: plan (copied out per request), the counters, the
    # stopping flag, and the fds' closing (closed only once no worker is
    # live, so a live worker uses them without the lock).
    cdef cython.pymutex lock
    cdef int live, waiting, signalled
    # Workers started that have not waited yet: a lonely worker does not
    # start another while one is on its way (without a GIL, takes come
    # faster than a thread starts, and each would start one more).
    cdef int starting
    cdef bint stopping
    cdef int stop_fd, work_fd       # eventfds; stop is never drained
    cdef int epoll_fd               # shared by the workers, see _pure.threads
    cdef object __weakref__         # for _engine.exit.retire_at_exit()
    cdef void close_fds(self) noexcept
    cdef bint is_stopping(self) noexcept
    cdef void set_plan(self, HookPlan *plan) noexcept
    cdef void rearm(self) noexcept nogil
    cdef int submit(self, request, client_address) except -1
    cdef bint reserve_worker(self) noexcept
    cdef int start_worker(self) except -1
    cdef int spawn(self) except -1
    cdef void retire_worker(self, bint fresh) noexcept
    cdef object next_request(self, _Worker *w, bint *fresh)
    cdef object take_queued(self)
    cdef object wait_for_work(self, _Worker *w, bint *timed_out, bint *woken)
    cdef bint take(self, _Worker *w, int *err) noexcept nogil
    cdef int prepare_take(self, _Worker *w) except -1
    cdef object wrap_taken(self, _Worker *w)
    cdef void pause(self, int wait_ms) noexcept

cdef Py_ssize_t _limit(value) except -2
cdef bint run_request(object server, HookPlan *p, object request,
                      object client_address) except -1

cdef int _report_escaped(exc) except -1
cdef int _start_thread_request(object server, HookPlan *p, object request,
                               object client_address) except -1

cdef bint leads_on_workers(HookPlan *p, object sock) except -1
cdef int wait_for_stop(object server, Waker waker) except -1
cdef int serve_forever_on_workers(object server, object plan,
                                  Waker waker) except -1
