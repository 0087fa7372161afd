"""systemd's two protocols, written with the standard library alone.

Socket activation (sd_listen_fds(3)): systemd binds the sockets of a
``.socket`` unit and starts the service with them open from fd 3 on,
saying so in ``LISTEN_PID`` (the process they are meant for),
``LISTEN_FDS`` (how many) and ``LISTEN_FDNAMES`` (their ``FileDescriptorName=``
names, colon-separated).  ``listen_fds()`` reads them once.

Notification (sd_notify(3)): a service of ``Type=notify`` tells systemd how
it is doing in datagrams of ``NAME=value`` lines sent to the AF_UNIX socket
named by ``NOTIFY_SOCKET``; ``notify()`` sends one, and ``ready()``,
``stopping()``, ``reloading()`` and ``Watchdog`` the usual ones.

Called by ``TCPServer.from_systemd`` and by ``BaseServer.serve_forever``
when ``systemd_notify`` is set; a supervisor of worker processes (prefork)
tells systemd through a ``Supervision``, and its workers tell it nothing.
Imports nothing of csockserver.
"""

import os
import socket
import time

_FIRST_FD = 3  # SD_LISTEN_FDS_START
_LISTEN_VARS = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")
# A notification waits at most this long for room in systemd's queue.
_SEND_TIMEOUT = 1.0

# (pid, [(fd, name), ...]) once listen_fds() has cleared the environment:
# the fds stay this process's, so later calls still return them.
_passed = None
# fds that from_systemd() has wrapped in a socket object (which owns them).
adopted = set()


def listen_fds(unset_environment=True):
    """The sockets systemd passed to this process, as ``(fd, name)`` pairs.

    Empty unless ``LISTEN_PID`` is this process's pid.  The fds are made
    close-on-exec, and (with *unset_environment*) the three variables are
    removed from ``os.environ`` whoever they were for, so that no child,
    forked or exec'd, takes them for its own.  Names are ``"unknown"``
    where ``LISTEN_FDNAMES`` gives none, as in libsystemd.
    """
    global _passed
    pid = os.getpid()
    if _passed is not None and _passed[0] == pid:
        return list(_passed[1])
    environ = os.environ
    try:
        for_us = int(environ.get("LISTEN_PID", "")) == pid
        count = int(environ.get("LISTEN_FDS", "")) if for_us else 0
    except ValueError:
        count = 0
    names = environ.get("LISTEN_FDNAMES", "").split(":")
    if unset_environment:
        for name in _LISTEN_VARS:
            environ.pop(name, None)
    fds = []
    for i in range(max(0, count)):
        fd = _FIRST_FD + i
        os.set_inheritable(fd, False)  # FD_CLOEXEC; EBADF if not open
        name = names[i] if i < len(names) and names[i] else "unknown"
        fds.append((fd, name))
    if unset_environment and fds:
        _passed = (pid, fds)
    return list(fds)


def notify(state):
    """Send *state* (``"NAME=value"`` lines, str or bytes) to systemd.

    Returns whether it was sent.  Without ``NOTIFY_SOCKET`` this does
    nothing; a socket that is missing, refuses or stays full for
    ``_SEND_TIMEOUT`` seconds is not an error either (False): a service
    outside systemd, or one whose manager went away, keeps serving.
    """
    address = os.environ.get("NOTIFY_SOCKET", "")
    if address.startswith("@"):     # the abstract namespace
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        return False  # unset, or a kind we do not speak (vsock:...)
    if isinstance(state, str):
        state = state.encode("utf-8")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.settimeout(_SEND_TIMEOUT)
            sock.sendto(state, address)
    except OSError:
        return False
    return True


def ready():
    """READY=1: startup is done (MAINPID names us, the one serving)."""
    return notify("READY=1\nMAINPID=%d" % os.getpid())


def stopping():
    """STOPPING=1: the service is shutting down."""
    return notify("STOPPING=1")


def reloading():
    """RELOADING=1 with the time it began; send ready() once reloaded."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify("RELOADING=1\nMONOTONIC_USEC=%d" % usec)


class Watchdog:
    """WATCHDOG=1 pings, sent by ``tick()`` from the loop they vouch for.

    systemd restarts a service that goes ``WATCHDOG_USEC`` without a ping;
    sd_watchdog_enabled(3) advises a ping every half of that (``every``).
    The loop calls ``tick()`` at least every ``wake`` seconds (a quarter
    of ``every``) and ``tick()`` pings once ``every - wake`` has passed
    since the last ping, so pings come between 3/8 and 1/2 of the limit
    apart while the loop runs, and stop when it hangs.
    """

    def __init__(self, usec):
        self.every = usec / 2e6
        self.wake = self.every / 4
        self.last = None

    @classmethod
    def from_environment(cls):
        """A Watchdog if systemd asked this process for pings, else None."""
        environ = os.environ
        try:
            usec = int(environ.get("WATCHDOG_USEC", ""))
            pid = int(environ.get("WATCHDOG_PID", os.getpid()))
        except ValueError:
            return None
        if usec <= 0 or pid != os.getpid() or "NOTIFY_SOCKET" not in environ:
            return None
        return cls(usec)

    def tick(self):
        """Ping if a ping is due; cheap enough to call after every request."""
        now = time.monotonic()
        if self.last is None or now - self.last >= self.every - self.wake:
            self.last = now
            notify("WATCHDOG=1")


class Supervision:
    """What the supervisor of worker processes (prefork) tells systemd.

    READY=1 once a generation of workers all serve (the first one, then
    each reload's), RELOADING=1 as a reload begins, STOPPING=1, and the
    watchdog pings of the supervisor's loop, which therefore vouch for the
    supervisor (that restarts dead workers), not for each worker's loop.
    Every method does nothing unless *enabled* (``systemd_notify``).
    """

    def __init__(self, enabled):
        self.enabled = enabled
        self.watchdog = Watchdog.from_environment() if enabled else None
        self.announced = None   # the generation READY=1 was sent for

    def wait(self):
        """The longest the supervisor may sleep, in seconds, or None."""
        return None if self.watchdog is None else self.watchdog.wake

    def tick(self):
        """Called on every turn of the supervisor's loop."""
        if self.watchdog is not None:
            self.watchdog.tick()

    def serving(self, generation):
        """All of *generation*'s workers serve: READY=1, once for each."""
        if self.enabled and generation != self.announced:
            self.announced = generation
            ready()

    def reloading(self):
        if self.enabled:
            reloading()

    def stopping(self):
        if self.enabled:
            stopping()
