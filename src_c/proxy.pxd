# The declarations of proxy.pxi: what the fragments included after it may
# use (see csockserver._cengine.pxd).

cdef enum:
    PROXY_V1 = 1
    PROXY_V2 = 2
    PROXY_V1_MAX = 107          # a v1 line, CRLF included
    PROXY_V2_FIXED = 16         # a v2 header before its addresses and TLVs
    PROXY_SMALL = 256           # room for any header without TLVs

cdef Py_ssize_t _header_length(const unsigned char *data, Py_ssize_t n,
                               int versions) noexcept nogil

cdef bytes read_header(int fd, int versions, object timeout)
cdef bint reads_header_later(HookPlan *p) noexcept
cdef object client_address_of(object server, HookPlan *p, object request,
                              object peer)

cdef int report_error(object server, HookPlan *p, object request,
                      object client_address, object exc) except -1
