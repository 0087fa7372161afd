# Declarations of the CPython C-API that the compiled engine needs and
# Cython's own cpython package does not ship.

cdef extern from "Python.h":
    # What os.fork() runs around fork(): at-fork hooks, the import lock,
    # the runtime's reinitialisation in the child.
    void PyOS_BeforeFork()
    void PyOS_AfterFork_Parent()
    void PyOS_AfterFork_Child()

    # A unix socket path, decoded as the socket module decodes one.
    object PyUnicode_DecodeFSDefaultAndSize(const char *s, Py_ssize_t size)
