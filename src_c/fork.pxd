# The declarations of fork.pxi: what the fragments included after it may
# use (see csockserver._cengine.pxd).

cdef enum:
    REAPER_EVENTS = 64          # exited children picked up per epoll_wait

cdef pid_t _fork() except -1

cdef class Reaper:
    cdef int epoll_fd
    cdef dict pidfds                # pid -> pidfd
    cdef readonly bint works        # False once pidfd_open is unavailable

cdef int _fork_request(object server, HookPlan *p, object request,
                       object client_address) except -1
