"""What /proc says about another process: whether it is running, a zombie
or gone, its process group and parent, its CPU time, fds and status lines.

The one reader of ``/proc/<pid>/stat`` in the suite.  A process that is
gone shows as ENOENT at the open or, when it is reaped between the open and
the read, as ESRCH at the read: both mean "gone", wherever this is asked.
A zombie (exited, not yet reaped) still has its entry: it *exists* but is
not *running*.

Plain Python 3.8 with no import from the suite: a child script on another
interpreter is given this module's source (test_process_faults).
"""

import collections
import os

# The fields of /proc/<pid>/stat this suite reads (proc(5)): the state
# letter, parent, process group, and user and system CPU in clock ticks.
Stat = collections.namedtuple("Stat", "state ppid pgrp utime stime")

HZ = os.sysconf("SC_CLK_TCK")


def stat(pid):
    """*pid*'s Stat, or None once it is gone (reaped, or never was)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError):
        # ENOENT: gone before the open; ESRCH: between the open and the read.
        return None
    # The command name, in parentheses, may hold spaces and parentheses.
    fields = text.rsplit(")", 1)[1].split()
    return Stat(fields[0], int(fields[1]), int(fields[3]), int(fields[11]),
                int(fields[12]))


def exists(pid):
    """Whether *pid* still has a process table entry: running, or a zombie
    its parent has not reaped yet."""
    return stat(pid) is not None


def is_running(pid, pgid=None):
    """Whether *pid* is running (neither a zombie nor gone), and, with
    *pgid*, a member of that process group."""
    found = stat(pid)
    return (found is not None and found.state not in ("Z", "X")
            and (pgid is None or found.pgrp == pgid))


def cpu_seconds(pid):
    """User + system CPU seconds of every thread of *pid* so far."""
    found = stat(pid)
    if found is None:
        raise ProcessLookupError("pid %d is gone" % pid)
    return (found.utime + found.stime) / HZ


def count_fds(pid):
    """How many fds *pid* has open."""
    return len(os.listdir("/proc/%d/fd" % pid))


def status_field(pid, key):
    """The number on *pid*'s ``key:`` line of /proc/<pid>/status (Threads,
    VmRSS and VmHWM in KiB...)."""
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)
