"""The public API, compared name by name with the running socketserver."""

import inspect
import re
import socket
import socketserver
import threading

import pytest

import csockserver
from tests.support.clients import recv_until_eof, stream_client
from tests.support.env import HAVE_FORK
from tests.support.leaks import LeakCheck, fd_count
from tests.support.servers import ServerThread, handle_request

PUBLIC_NAMES = sorted(socketserver.__all__)

# Hooks and methods whose signatures must match wherever the stdlib class
# has them (private ones included: subclasses override them too).
METHODS = (
    "__init__", "get_request", "verify_request", "process_request",
    "finish_request", "shutdown_request", "close_request", "handle_error",
    "handle_timeout", "service_actions", "_handle_request_noblock",
    "server_bind", "server_activate", "server_close", "fileno",
    "serve_forever", "shutdown", "handle_request", "collect_children",
    "process_request_thread", "setup", "handle", "finish", "__enter__",
    "__exit__",
)


def public_names(cls):
    return {name for name in dir(cls) if not name.startswith("_")}


def method_names(cls):
    names = set(METHODS) | {name for name in public_names(cls)
                            if callable(getattr(cls, name))}
    return sorted(names)


def test_all_matches_stdlib():
    assert set(csockserver.__all__) == set(socketserver.__all__)


def test_every_name_in_all_exists():
    for name in csockserver.__all__:
        assert hasattr(csockserver, name), name


@pytest.mark.parametrize("name", PUBLIC_NAMES)
def test_same_kind_and_mro(name):
    ours, theirs = getattr(csockserver, name), getattr(socketserver, name)
    assert inspect.isclass(theirs)
    assert inspect.isclass(ours)
    assert [c.__name__ for c in ours.__mro__] == [
        c.__name__ for c in theirs.__mro__]
    # Made of csockserver's own classes all the way up, not the stdlib's.
    for cls in ours.__mro__[:-1]:
        assert getattr(csockserver, cls.__name__) is cls


# Documented options beyond socketserver, and the classes that carry them.
BEYOND_STDLIB = {
    csockserver.BaseServer: {"systemd_notify"},
    csockserver.ThreadingMixIn: {"max_threads", "max_queued",
                                 "thread_idle_timeout"},
    csockserver.TCPServer: {"proxy_protocol", "proxy_protocol_timeout",
                            "proxy_protocol_from", "from_systemd"},
    csockserver.StreamRequestHandler: {"read_deadline"},
}


def beyond_stdlib(cls):
    return set().union(*(extra for base, extra in BEYOND_STDLIB.items()
                         if issubclass(cls, base)))


@pytest.mark.parametrize("name", PUBLIC_NAMES)
def test_same_public_names(name):
    ours, theirs = getattr(csockserver, name), getattr(socketserver, name)
    extra = beyond_stdlib(ours)
    assert extra <= public_names(ours)
    assert public_names(ours) - extra == public_names(theirs)


@pytest.mark.parametrize("name", PUBLIC_NAMES)
def test_same_signatures(name):
    ours, theirs = getattr(csockserver, name), getattr(socketserver, name)
    for method in method_names(theirs):
        assert hasattr(ours, method) == hasattr(theirs, method), method
        if hasattr(theirs, method):
            assert (inspect.signature(getattr(ours, method))
                    == inspect.signature(getattr(theirs, method))), (
                        name, method)


# Defaults that differ on purpose (each documented in the README):
# request_queue_size is SOMAXCONN (tested below); stream handlers turn off
# Nagle's algorithm on TCP connections.
DIFFERENT_DEFAULTS = {
    ("StreamRequestHandler", "disable_nagle_algorithm"): True,
}


@pytest.mark.parametrize("name", PUBLIC_NAMES)
def test_same_class_attribute_defaults(name):
    ours, theirs = getattr(csockserver, name), getattr(socketserver, name)
    for attr in sorted(public_names(theirs)):
        value = getattr(theirs, attr)
        if callable(value) or attr == "request_queue_size":
            continue
        if (name, attr) in DIFFERENT_DEFAULTS:
            value = DIFFERENT_DEFAULTS[name, attr]
        assert getattr(ours, attr) == value, (name, attr)
        assert type(getattr(ours, attr)) is type(value), (name, attr)


@pytest.mark.parametrize("name", [n for n in PUBLIC_NAMES if hasattr(
    getattr(socketserver, n), "request_queue_size")])
def test_request_queue_size_is_somaxconn(name):
    # The one deliberate difference in defaults (see the README).
    assert getattr(csockserver, name).request_queue_size == socket.SOMAXCONN


def test_request_queue_size_can_be_set_back():
    class OldBacklog(csockserver.TCPServer):
        request_queue_size = 5

    with OldBacklog(("127.0.0.1", 0), csockserver.BaseRequestHandler) as s:
        assert s.request_queue_size == 5


# -- instance state that real code touches ---------------------------------

def test_shutdown_flags_readable_and_writable(impl):
    with impl.TCPServer(("127.0.0.1", 0), impl.BaseRequestHandler) as server:
        assert server._BaseServer__shutdown_request is False
        assert isinstance(server._BaseServer__is_shut_down, threading.Event)
        assert not server._BaseServer__is_shut_down.is_set()

        server._BaseServer__shutdown_request = True
        assert server._BaseServer__shutdown_request is True
        server._BaseServer__shutdown_request = False
        assert server._BaseServer__shutdown_request is False

        replacement = threading.Event()
        server._BaseServer__is_shut_down = replacement
        assert server._BaseServer__is_shut_down is replacement
        # serve_forever and shutdown use the replaced event.
        with ServerThread(server):
            pass
        assert replacement.is_set()
        assert server._BaseServer__shutdown_request is False


def upper_line_handler(impl):
    """A handler that answers one line with the same line upper-cased."""
    class UpperLine(impl.StreamRequestHandler):
        def handle(self):
            self.wfile.write(self.rfile.readline().upper())
    return UpperLine


def test_threads_attribute(impl):
    with impl.ThreadingTCPServer(("127.0.0.1", 0),
                                 upper_line_handler(impl)) as server:
        # Before any request: the class-level stand-in.
        assert "_threads" not in vars(server)
        assert type(server._threads).__name__ == "_NoThreads"
        with stream_client(server) as client:
            client.sendall(b"x\n")
            handle_request(server)
            assert recv_until_eof(client) == b"X\n"
        assert isinstance(vars(server)["_threads"], list)
        assert type(server._threads).__name__ == "_Threads"
        server.server_close()
        assert list(server._threads) == []


def test_threads_not_tracked_without_block_on_close(impl):
    class NoBlock(impl.ThreadingTCPServer):
        block_on_close = False

    with NoBlock(("127.0.0.1", 0), upper_line_handler(impl)) as server:
        with stream_client(server) as client:
            client.sendall(b"x\n")
            handle_request(server)
            assert recv_until_eof(client) == b"X\n"
        assert "_threads" not in vars(server)


@pytest.mark.skipif(not HAVE_FORK, reason="needs os.fork")
def test_active_children(impl):
    server = impl.ForkingTCPServer(("127.0.0.1", 0), upper_line_handler(impl))
    try:
        assert server.active_children is None
        with stream_client(server) as client:
            client.sendall(b"x\n")
            handle_request(server)
            assert isinstance(server.active_children, set)
            assert len(server.active_children) == 1
            assert recv_until_eof(client) == b"X\n"
    finally:
        server.server_close()
    assert server.active_children == set()


def test_server_address_rewritten_after_bind(impl):
    with impl.TCPServer(("127.0.0.1", 0), impl.BaseRequestHandler) as server:
        host, port = server.server_address
        assert host == "127.0.0.1"
        assert port != 0
        assert server.server_address == server.socket.getsockname()


def test_server_address_kept_without_bind(impl):
    server = impl.TCPServer(("127.0.0.1", 0), impl.BaseRequestHandler,
                            bind_and_activate=False)
    try:
        assert server.server_address == ("127.0.0.1", 0)
    finally:
        server.server_close()


def test_failed_bind_raises_and_closes(impl):
    with pytest.raises(OverflowError):
        impl.TCPServer(("127.0.0.1", -1), impl.BaseRequestHandler)


def test_failed_bind_leaks_no_fd(impl):
    leaks = LeakCheck()
    before = fd_count()
    for _ in range(500):
        with pytest.raises(OverflowError):
            impl.TCPServer(("127.0.0.1", -1), impl.BaseRequestHandler)
    assert fd_count() == before
    leaks.check()


def test_failed_bind_calls_server_close(impl):
    closed = []

    class Recording(impl.TCPServer):
        def server_close(self):
            closed.append(self.socket.fileno() >= 0)
            super().server_close()

    with pytest.raises(OverflowError):
        Recording(("127.0.0.1", -1), impl.BaseRequestHandler)
    assert closed == [True]


def test_context_manager_closes_socket(impl):
    with impl.TCPServer(("127.0.0.1", 0), impl.BaseRequestHandler) as server:
        assert server.fileno() >= 0
        assert server.fileno() == server.socket.fileno()
    assert server.fileno() == -1
    assert server.socket.fileno() == -1


def test_context_manager_returns_server(impl):
    server = impl.UDPServer(("127.0.0.1", 0), impl.BaseRequestHandler)
    with server as entered:
        assert entered is server
    assert server.fileno() == -1


# -- handle_error's report -------------------------------------------------

def _error_report(impl, capsys):
    class Failing(impl.StreamRequestHandler):
        def handle(self):
            self.rfile.readline()
            raise ValueError("boom")

    with impl.TCPServer(("127.0.0.1", 0), Failing) as server:
        capsys.readouterr()
        with stream_client(server) as client:
            client.sendall(b"go\n")
            handle_request(server)
            assert recv_until_eof(client) == b""
            address = client.getsockname()
    err = capsys.readouterr().err
    return err.replace(str(address), "<client>")


def test_handle_error_report_like_stdlib(capsys):
    ours = _error_report(csockserver, capsys).splitlines()
    theirs = _error_report(socketserver, capsys).splitlines()
    for report in (ours, theirs):
        assert report[0] == "-" * 40
        assert report[-1] == "-" * 40
        assert report[2] == "Traceback (most recent call last):"
        assert report[-2] == "ValueError: boom"
        assert any(re.search(r", in handle$", line) for line in report)
        assert any('raise ValueError("boom")' in line for line in report)
    # Same banner, same address form (masked), same closing lines.
    assert ours[1] == theirs[1]
    assert theirs[1].endswith(" <client>")
    assert ours[-2:] == theirs[-2:]


# -- module attributes and options that follow the interpreter ---------------

def _version_of(module):
    """(value, DeprecationWarning messages) of module.__version__."""
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = getattr(module, "__version__", None)
    return value, [(w.category, str(w.message), w.filename) for w in caught]


def test_dunder_version_is_socketservers():
    # socketserver's own "0.4", deprecated (with the same warning, pointing
    # at the caller) where the running socketserver deprecates it.
    assert _version_of(csockserver) == _version_of(socketserver)
    assert _version_of(csockserver)[0] == "0.4"


def test_own_version_is_separate():
    import importlib.metadata
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", csockserver.VERSION)
    try:
        installed = importlib.metadata.version("csockserver")
    except importlib.metadata.PackageNotFoundError:
        return      # run from a checkout without installing it
    assert installed == csockserver.VERSION


def _reuse_port_after_bind(module, family, address):
    class ReusePort(getattr(module, "UnixStreamServer"
                            if family == socket.AF_UNIX else "TCPServer")):
        allow_reuse_port = True
        address_family = family

    try:
        server = ReusePort(address, module.BaseRequestHandler)
    except OSError as exc:
        return "bind failed: %s" % exc.strerror
    with server:
        return bool(server.socket.getsockopt(socket.SOL_SOCKET,
                                             socket.SO_REUSEPORT))


@pytest.mark.skipif(not hasattr(socketserver.TCPServer, "allow_reuse_port")
                    or not hasattr(socket, "SO_REUSEPORT"),
                    reason="allow_reuse_port came with Python 3.11")
@pytest.mark.parametrize("family", ["AF_INET", "AF_INET6", "AF_UNIX"])
def test_allow_reuse_port_as_the_running_socketserver(family, unix_path):
    # Whether SO_REUSEPORT is set on a unix socket (or the bind fails, on
    # Linux 6.12.9+) follows the interpreter: newer socketservers set it
    # only on AF_INET/AF_INET6.
    if family == "AF_INET6" and not socket.has_ipv6:
        pytest.skip("no IPv6")
    family = getattr(socket, family)
    results = []
    for module in (socketserver, csockserver):
        address = {socket.AF_INET: ("127.0.0.1", 0),
                   socket.AF_INET6: ("::1", 0)}.get(family) or unix_path()
        results.append(_reuse_port_after_bind(module, family, address))
    assert results[0] == results[1]
    if family != socket.AF_UNIX and results[0] is not True:
        pytest.skip("this machine cannot bind %s" % family)
    if family != socket.AF_UNIX:
        assert results[1] is True
