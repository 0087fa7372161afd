# The declarations of headers.pxi: what the fragments included after it may
# use (see csockserver._cengine.pxd).

cdef object _header_field(const unsigned char *data, Py_ssize_t length)
cdef bint _changes_the_body(object name, object value) except -1
