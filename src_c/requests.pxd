# The declarations of requests.pxi: what the fragments included after it may
# use (see csockserver._cengine.pxd).

cdef int finish_request(object server, HookPlan *p, object request,
                        object client_address) except -1

cdef int _close_socket(object request) except -1
cdef int shutdown_request(object server, HookPlan *p,
                          object request) except -1

cdef int close_request(object server, HookPlan *p, object request) except -1
