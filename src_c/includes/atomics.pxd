# Loads and stores that are atomic without the GIL, for the few fields one
# thread reads while another may write them outside any lock (a flag
# checked on a fast path, a lock's owner).  GCC's and Clang's __atomic
# builtins: ThreadSanitizer understands them, and on x86-64 a load or a
# store of an aligned int is a plain mov, so GIL builds pay nothing.

cdef extern from *:
    """
    static inline int csock_load_int(const int *p)
    {
        return __atomic_load_n(p, __ATOMIC_ACQUIRE);
    }
    static inline void csock_store_int(int *p, int value)
    {
        __atomic_store_n(p, value, __ATOMIC_RELEASE);
    }
    static inline unsigned long csock_load_ulong(const unsigned long *p)
    {
        return __atomic_load_n(p, __ATOMIC_RELAXED);
    }
    static inline void csock_store_ulong(unsigned long *p,
                                         unsigned long value)
    {
        __atomic_store_n(p, value, __ATOMIC_RELAXED);
    }
    static inline double csock_load_double(const double *p)
    {
        double value;
        __atomic_load(p, &value, __ATOMIC_RELAXED);
        return value;
    }
    static inline void csock_store_double(double *p, double value)
    {
        __atomic_store(p, &value, __ATOMIC_RELAXED);
    }
    """
    int csock_load_int(const int *p) nogil
    void csock_store_int(int *p, int value) nogil
    unsigned long csock_load_ulong(const unsigned long *p) nogil
    void csock_store_ulong(unsigned long *p, unsigned long value) nogil
    double csock_load_double(const double *p) nogil
    void csock_store_double(double *p, double value) nogil
