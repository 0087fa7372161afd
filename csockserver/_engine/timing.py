"""Timings and error sets both engines wait and back off by, and the
explicit look for signal handlers that their waits make.

Neutral ground, as every module of this package but ``selection`` and
``streams``: it imports no engine, and both engines import it.
"""

import errno
import signal

# accept()/recvfrom() errors that mean "out of resources" (or a socket that
# cannot accept at all): retrying at once would spin the loop, so it stops
# watching the socket for a while, doubling the pause up to BACKOFF_MAX.
BACKOFF_ERRNOS = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS,
                            errno.ENOMEM, errno.EBADF, errno.EINVAL))
BACKOFF_FIRST = 0.005
BACKOFF_MAX = 0.1
# Longest the main thread sleeps in one wait: a backstop so that a signal
# that lands just before the wait begins is still acted on promptly.
SIGNAL_CHECK_INTERVAL = 1.0
# Without pidfds, how often a wait for a free child slot looks again.
NO_PIDFD_POLL = 0.01


def run_signal_handlers():
    """Run now the Python handlers of signals already caught, as the
    compiled waits' PyErr_CheckSignals() does on a wake-up with no event.

    The interpreter runs them at the main thread's next bytecode once told
    a signal came, but CPython 3.13 and later (seen on 3.13.0, 3.14.10 and
    3.15.2), in a process forked from a thread that was not the main one,
    never tell the main thread of a signal, caught on any thread: only
    such an explicit look runs them.  pthread_sigmask()
    with an empty set changes no mask; it is called for the
    PyErr_CheckSignals() it ends with, which Python offers no other way.
    """
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, ())
