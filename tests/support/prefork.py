"""A prefork supervisor in a child process, for the tests of its
lifecycle and of process faults: the script, a handle on it, and clients.

The supervisor runs in a child Python (signals reach only a main thread's
handlers), in a session of its own, so that the whole process group -
supervisor and every worker - is SIGKILLed at the end whatever happened.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

from tests.support.env import CLIENT_TIMEOUT, JOIN_TIMEOUT, PYTHON, child_env


# The supervisor.  Its handler answers each line with "<pid>\n", or
# "<pid> bye\n" when its worker is retiring, and then closes, as an HTTP
# server says "Connection: close".  "sleep <s>" is first acknowledged
# with "<pid> sleeping\n", so that a test knows the request is running.
# A thread prints "pids <port> <pid>..." each time worker_pids changes.
SUPERVISOR = textwrap.dedent("""
    import faulthandler, json, os, signal, sys, threading, time
    import csockserver
    # Supervised.dump_stacks(): every thread's stack on stderr, also in the
    # workers (a C-level handler: forked with them, and not reset there).
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    from csockserver._prefork import supervisor, worker

    def replace(module, name, value):
        # An AttributeError, not a silent no-op, once the name moves.
        getattr(module, name)
        setattr(module, name, value)

    config = json.loads(sys.argv[1])
    if config.pop("no_pdeathsig", False):
        # the watcher thread alone
        replace(supervisor, "_find_prctl", lambda: None)
    slow_start = config.pop("slow_start", 0)
    if slow_start:
        # Each worker waits first thing after fork(), with the signals it
        # handles still held and its handlers not yet set.
        die_with_parent = worker._die_with_parent
        def waiting_first(*args):
            time.sleep(slow_start)
            die_with_parent(*args)
        replace(worker, "_die_with_parent", waiting_first)

    class Handler(csockserver.StreamRequestHandler):
        def handle(self):
            for line in self.rfile:
                words = line.split()
                if words[:1] == [b"sleep"]:
                    self.wfile.write(b"%d sleeping\\n" % os.getpid())
                    time.sleep(float(words[1]))
                bye = getattr(self.server, "retiring", False)
                self.wfile.write(b"%d%s\\n" % (os.getpid(),
                                              b" bye" if bye else b""))
                if bye:
                    return

    base = (csockserver.PreforkThreadingTCPServer
            if config.pop("threading", False)
            else csockserver.PreforkTCPServer)
    Server = type("Server", (base,), config)
    server = Server(("127.0.0.1", 0), Handler)

    # One line per write, under a lock: print() writes its words one by
    # one, so two threads' lines could interleave.
    said = threading.Lock()
    def say(*words):
        with said:
            sys.stdout.write(" ".join(map(str, words)) + "\\n")
            sys.stdout.flush()

    def announce():
        seen = None
        while True:
            pids = server.worker_pids
            if pids != seen:
                seen = pids
                say("pids", server.server_address[1], *sorted(pids))
            time.sleep(0.005)
    threading.Thread(target=announce, daemon=True).start()
    with server:
        server.serve_forever()
    say("returned")
""")


class Supervised:
    """A prefork supervisor in a child process, and what it announces."""

    def __init__(self, **attrs):
        self.proc = subprocess.Popen(
            [PYTHON, "-c", SUPERVISOR, json.dumps(attrs)], env=child_env(),
            stdout=subprocess.PIPE, text=True, start_new_session=True)
        self.pgid = self.proc.pid
        self.changed = threading.Condition()
        self.history = []            # every worker_pids announced, in order
        self.port = None
        self.returned = False
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            words = line.split()
            with self.changed:
                if words[:1] == ["pids"]:
                    self.port = int(words[1])
                    self.history.append(frozenset(map(int, words[2:])))
                elif words == ["returned"]:
                    self.returned = True
                self.changed.notify_all()

    @property
    def pids(self):
        with self.changed:
            return self.history[-1] if self.history else frozenset()

    def wait_pids(self, predicate, timeout=JOIN_TIMEOUT):
        """The first announced worker_pids, from now on, that satisfies
        predicate (the current one counts)."""
        with self.changed:
            start = max(0, len(self.history) - 1)
            found = self.changed.wait_for(
                lambda: next((p for p in self.history[start:]
                              if predicate(p)), None), timeout)
        assert found is not None, "worker_pids never satisfied %s; saw %s" % (
            predicate, self.history[start:])
        return found

    def signal(self, signum):
        os.kill(self.proc.pid, signum)

    def dump_stacks(self, pids):
        """For a failure's report: where each of *pids* is stuck, from the
        kernel (each thread's wait channel) and from Python (its stacks, on
        the captured stderr)."""
        for pid in pids:
            try:
                tasks = os.listdir("/proc/%d/task" % pid)
                waits = []
                for task in tasks:
                    with open("/proc/%d/task/%s/wchan" % (pid, task)) as f:
                        waits.append("%s:%s" % (task, f.read()))
                print("pid %d threads %s" % (pid, " ".join(waits)),
                      file=sys.stderr, flush=True)
                os.kill(pid, signal.SIGUSR1)
            except OSError:
                pass    # gone meanwhile
        time.sleep(0.5)     # for the stacks to be written

    def close(self):
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(JOIN_TIMEOUT)
        self.reader.join(JOIN_TIMEOUT)
        self.proc.stdout.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def port_is_free(port):
    """Nothing listens on 127.0.0.1:port: a connection is refused and the
    kernel lists no listening socket on it.  (A fresh bind may still fail:
    the served connections' TIME_WAIT entries hold the port, whatever
    SO_REUSEADDR says, since the listener had not set it.)"""
    try:
        socket.create_connection(("127.0.0.1", port),
                                 timeout=CLIENT_TIMEOUT).close()
        return False
    except ConnectionRefusedError:
        pass
    with open("/proc/net/tcp") as table:
        rows = [line.split() for line in table][1:]
    listening = "0A"
    return not any(int(local.rsplit(":", 1)[1], 16) == port
                   and state == listening for _, local, _, state, *_ in rows)


def ask(port, line=b"\n"):
    """One request on a connection of its own: the serving worker's pid."""
    with socket.create_connection(("127.0.0.1", port),
                                  timeout=CLIENT_TIMEOUT) as sock:
        sock.sendall(line)
        sock.shutdown(socket.SHUT_WR)
        return int(sock.makefile("rb").readline().split()[0])


def start_sleeping(port, seconds):
    """A connection whose request is now sleeping in a worker: (socket,
    its reply stream, the worker's pid)."""
    sock = socket.create_connection(("127.0.0.1", port),
                                    timeout=CLIENT_TIMEOUT)
    replies = sock.makefile("rb")
    sock.sendall(b"sleep %g\n" % seconds)
    pid, state = replies.readline().split()
    assert state == b"sleeping"
    return sock, replies, int(pid)
