"""Run CPython's own tests of socketserver and its users on csockserver.

Usage::

    python tools/run_cpython_suite.py                  # every suite below
    python tools/run_cpython_suite.py test.test_xmlrpc # just the named ones
    python tools/run_cpython_suite.py --reference test.test_xmlrpc

The test modules come from the running interpreter's ``test`` package;
nothing of them is copied here.  ``csockserver.install()`` runs first, and
the modules built on socketserver (``http.server``, ``xmlrpc.server``,
``wsgiref.simple_server``) and the test modules are imported afresh after
it; the run is refused unless every one of their servers and handlers then
derives from csockserver's classes.  csockserver is the importable one
(PYTHONPATH, or installed), else this checkout's; the engine is whichever
it picks (CSOCKSERVER_NO_EXTENSIONS=1 for the pure one,
CSOCKSERVER_REQUIRE_EXTENSIONS=1 to insist on the compiled one).  A run
also fails when test.support reports threads or child processes left
behind (regrtest's "environment changed").

Without names, each suite in ``SUITES`` runs in a process of its own (the
engine is chosen at import time, and each suite should start from a clean
interpreter); named modules run together in this process.
``--reference`` runs the named modules on the standard library's
socketserver, with no test skipped: the way to check that a test listed in
``FAILS_WITHOUT_CSOCKSERVER`` fails there too.

Exit status: 0 when every test passed (skips are allowed), 1 on any failure
or error or a refused run, 3 when the interpreter has no ``test`` package.
"""

import importlib
import inspect
import os
import socket
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
NO_TEST_PACKAGE = 3

SUITES = ("test.test_socketserver", "test.test_httpservers",
          "test.test_xmlrpc", "test.test_wsgiref")

# The standard library's modules built on socketserver: in each, classes
# and the csockserver class each must derive from once csockserver stands in.
BUILT_ON_SOCKETSERVER = {
    "http.server": {"HTTPServer": "TCPServer",
                    "ThreadingHTTPServer": "ThreadingMixIn",
                    "BaseHTTPRequestHandler": "StreamRequestHandler"},
    "xmlrpc.server": {"SimpleXMLRPCServer": "TCPServer",
                      "SimpleXMLRPCRequestHandler": "StreamRequestHandler"},
    "wsgiref.simple_server": {"WSGIServer": "TCPServer",
                              "WSGIRequestHandler": "StreamRequestHandler"},
}

# Tests skipped on csockserver because they fail the same way on the
# standard library's socketserver in this environment, so they cannot tell
# the two apart: test id -> why.  Only add a test after checking it with
# ``--reference`` (and ``python -m unittest -v <id>``).
# None so far: on Linux, CPython 3.8 to 3.15, every test either passes on
# both engines or is skipped by CPython itself (the CGI tests, as root).
FAILS_WITHOUT_CSOCKSERVER = {
}


def _forget_stdlib_users(test_modules):
    """Drop from sys.modules what was built on the real socketserver.

    That is socketserver itself, the modules in BUILT_ON_SOCKETSERVER, the
    test modules about to run, and any module holding one of those or one
    of their objects, so that importing them again builds them on whatever
    ``socketserver`` is then.
    """
    stale = {"socketserver", *BUILT_ON_SOCKETSERVER, *test_modules}
    while True:
        more = set()
        for name, module in list(sys.modules.items()):
            if name in stale or module is None:
                continue
            for value in list(getattr(module, "__dict__", {}).values()):
                held = value.__name__ if inspect.ismodule(value) else getattr(
                    value, "__module__", None)
                # A package's attribute naming its own submodule is only
                # the import system's bookkeeping, not a use of it.
                if (isinstance(held, str) and held in stale
                        and not held.startswith(name + ".")):
                    more.add(name)
                    break
        if not more:
            break
        stale |= more
    for name in stale:
        sys.modules.pop(name, None)


def _foreign_bases(cls, ours):
    """The classes of the real socketserver that *cls* derives from."""
    return [base for base in cls.__mro__
            if base.__module__ == "socketserver" and base not in ours]


def _check_substitution(csockserver, test_modules):
    """Problems that would make the run prove nothing about csockserver."""
    ours = {value for value in vars(csockserver).values()
            if isinstance(value, type)}
    problems = []
    if sys.modules.get("socketserver") is not csockserver:
        problems.append("sys.modules['socketserver'] is not csockserver")
    for name, classes in BUILT_ON_SOCKETSERVER.items():
        module = importlib.import_module(name)
        for class_name, base_name in classes.items():
            cls = getattr(module, class_name)
            if getattr(csockserver, base_name) not in cls.__mro__:
                problems.append("%s.%s does not derive from csockserver.%s"
                                % (name, class_name, base_name))
    # Whatever the test modules and those modules hold at their top level.
    for name in (*BUILT_ON_SOCKETSERVER, *test_modules):
        for attr, value in vars(sys.modules[name]).items():
            if value is sys.modules.get("socketserver"):
                continue
            if inspect.ismodule(value) and value.__name__ == "socketserver":
                problems.append("%s.%s is the real socketserver"
                                % (name, attr))
            elif isinstance(value, type) and _foreign_bases(value, ours):
                problems.append("%s.%s derives from the real socketserver"
                                % (name, attr))
    return problems


def _skip_known_failures(suite):
    """Mark the tests in FAILS_WITHOUT_CSOCKSERVER as skipped."""
    for test in suite:
        if isinstance(test, unittest.TestSuite):
            _skip_known_failures(test)
            continue
        reason = FAILS_WITHOUT_CSOCKSERVER.get(test.id())
        method = getattr(test, "_testMethodName", None)
        if reason is not None and method is not None:
            setattr(test, method, unittest.skip(
                "fails without csockserver too: " + reason)(
                    getattr(test, method)))


# Fixed ports some of these suites expect nothing to listen on: module ->
# ports.  test_xmlrpc's test_ssl_presence connects to localhost:9999 -- the
# README demo's port -- and stalls for minutes if a server answers there.
PORTS_ASSUMED_FREE = {"test.test_xmlrpc": (9999,)}


def _busy_ports(names):
    """(module, port) pairs whose port already has a listener on localhost."""
    busy = []
    for name in names:
        for port in PORTS_ASSUMED_FREE.get(name, ()):
            try:
                socket.create_connection(("localhost", port),
                                         timeout=1).close()
            except OSError:
                continue
            busy.append((name, port))
    return busy


def run_here(names, reference=False):
    """Run the test modules *names* in this process; return the exit code."""
    try:
        import test.support
    except ImportError:
        print("this interpreter has no 'test' package", file=sys.stderr)
        return NO_TEST_PACKAGE
    busy = _busy_ports(names)
    if busy:
        for name, port in busy:
            print("refusing to run %s: something listens on localhost:%d, "
                  "which it expects to be free (the csockserver demo? stop "
                  "it and run again)" % (name, port), file=sys.stderr)
        return 1

    if not reference:
        try:
            import csockserver
        except ImportError:  # not installed: the checkout this file is in
            sys.path.insert(0, ROOT)
            import csockserver
        _forget_stdlib_users(names)
        csockserver.install()
    modules = [importlib.import_module(name) for name in names]
    if reference:
        print("reference run: the standard library's socketserver")
    else:
        problems = _check_substitution(csockserver, names)
        if problems:
            print("csockserver did not stand in for socketserver:\n  "
                  + "\n  ".join(problems), file=sys.stderr)
            return 1
        print("csockserver engine: %s (%s)" % (
            csockserver.IMPLEMENTATION,
            os.path.dirname(csockserver.__file__)))
    suite = unittest.TestSuite(
        unittest.defaultTestLoader.loadTestsFromModule(module)
        for module in modules)
    if not reference:
        _skip_known_failures(suite)
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    # Set by test.support when a test left threads or child processes
    # behind (regrtest's "env changed").
    altered = bool(getattr(test.support, "environment_altered", False))
    print("ran %d, failures %d, errors %d, skipped %d%s" % (
        result.testsRun, len(result.failures), len(result.errors),
        len(result.skipped), ", environment altered" if altered else ""))
    passed = result.wasSuccessful() and result.testsRun and not altered
    return 0 if passed else 1


def run_each(names, reference=False):
    """Run each module in a child process; the worst exit code wins."""
    worst = 0
    for name in names:
        print("== %s" % name, flush=True)
        argv = [sys.executable, os.path.abspath(__file__), name]
        if reference:
            argv.insert(2, "--reference")
        code = subprocess.call(argv)
        if code == NO_TEST_PACKAGE:
            return code
        worst = max(worst, code)
    return worst


def main(argv):
    reference = "--reference" in argv
    names = [arg for arg in argv if arg != "--reference"]
    if not names:
        return run_each(SUITES, reference)
    return run_here(names, reference)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
