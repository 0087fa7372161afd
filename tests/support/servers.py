"""Serving a server under test, every wait bounded: serve_forever() in a
thread stopped the way users stop it, blocking calls run under a deadline,
polling with one, and a service started by systemd-socket-activate.

A failing test must fail, not hang: shutdown() runs under a deadline,
joins take a timeout, and a forking server's children that outlive a
failed test are killed.
"""

import os
import signal
import subprocess
import threading
import time

from tests.support.env import JOIN_TIMEOUT, child_env


def run_bounded(fn, *args, timeout=JOIN_TIMEOUT, **kwargs):
    """Call fn(*args, **kwargs) in a helper thread; fail if it hangs.

    The result is returned and an exception (any BaseException) re-raised in
    the caller, so a blocking server call such as handle_request() or
    shutdown() can be used as plainly as in user code, but never waits
    forever.
    """
    outcome = {}

    def target():
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # re-raised in the caller
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="bounded-%s" % getattr(
        fn, "__name__", "call"), daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise AssertionError("%s did not return within %.1f s"
                             % (getattr(fn, "__name__", fn), timeout))
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def handle_request(server, timeout=JOIN_TIMEOUT):
    """server.handle_request(), bounded."""
    return run_bounded(server.handle_request, timeout=timeout)


def wait_for(predicate, timeout=JOIN_TIMEOUT, interval=0.005):
    """Poll predicate() until it is true or the deadline passes; return it."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


class ServerThread:
    """serve_forever() in a thread, stopped the way users stop it.

    ``stop()`` calls shutdown() (bounded), joins the thread (bounded) and
    server_close() (bounded, since the mix-ins join threads or children),
    then re-raises whatever serve_forever() raised.
    """

    def __init__(self, server, poll_interval=0.05):
        self.server = server
        self.poll_interval = poll_interval
        self.error = None
        self.stopped = False
        self.thread = threading.Thread(target=self._run, name="serve_forever",
                                       daemon=True)

    def _run(self):
        try:
            self.server.serve_forever(poll_interval=self.poll_interval)
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def start(self):
        self.thread.start()
        return self

    def shutdown(self, timeout=JOIN_TIMEOUT):
        """shutdown() + join, without closing the server."""
        if self.thread.is_alive():
            run_bounded(self.server.shutdown, timeout=timeout)
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "serve_forever did not return"

    def stop(self, timeout=JOIN_TIMEOUT, close=True):
        if self.stopped:
            return
        self.stopped = True
        try:
            self.shutdown(timeout)
        finally:
            if close:
                try:
                    run_bounded(self.server.server_close, timeout=timeout)
                except AssertionError:
                    kill_children(self.server)
                    raise
        if self.error is not None:
            raise self.error

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


def kill_children(server):
    """SIGKILL a forking server's children that outlived a failed test."""
    for pid in list(getattr(server, "active_children", None) or ()):
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except OSError:
            pass


def serving(server, poll_interval=0.05):
    """``with serving(server): ...`` runs serve_forever for the block."""
    return ServerThread(server, poll_interval)


def socket_activated(port, command, options=(), **popen_args):
    """systemd's own ``systemd-socket-activate``, listening on
    127.0.0.1:*port*, which starts *command* (a Python child of this
    csockserver: the engine's variables are passed on) at the first
    connection.  Its own session, so that a killpg ends it all."""
    env = child_env()
    passed = [name for name in ("PYTHONPATH", "CSOCKSERVER_NO_EXTENSIONS",
                                "CSOCKSERVER_REQUIRE_EXTENSIONS")
              if name in env]
    return subprocess.Popen(
        ["systemd-socket-activate", "--listen=127.0.0.1:%d" % port]
        + list(options) + ["--setenv=" + name for name in passed]
        + list(command), env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
        **popen_args)
