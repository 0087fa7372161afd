"""Both engines implement csockserver._engine.contract.Engine, name for name.

The compiled engine is checked whenever it can be imported (it is built
for both passes of CI), whichever engine the package itself picked; the
running servers' private state is checked on the engine the package runs.
"""

import importlib
import inspect
import socket
import subprocess

import pytest

import csockserver
from csockserver._engine import contract as _contract, plan as _plan
from csockserver._engine.selection import _flag

from tests.support.clients import recv_until_eof, stream_client
from tests.support.env import CLIENT_TIMEOUT, PYTHON, child_env
from tests.support.servers import ServerThread


def _engines():
    return [pytest.param("csockserver._pure", id="pure"),
            pytest.param("csockserver._cengine", id="compiled")]


def _load(name):
    try:
        return importlib.import_module(name)
    except ImportError:
        if name.endswith("_cengine") and not _flag(
                "CSOCKSERVER_REQUIRE_EXTENSIONS"):
            pytest.skip("the compiled engine is not built")
        raise


def _shape(function, drop_self):
    """A signature as (name, kind, default) triples, annotations aside."""
    parameters = list(inspect.signature(function).parameters.values())
    if drop_self:
        parameters = parameters[1:]
    return [(p.name, p.kind, p.default) for p in parameters]


def _protocol_methods(protocol):
    return {name: value for name, value in vars(protocol).items()
            if inspect.isfunction(value) and not name.startswith("_")}


@pytest.mark.parametrize("module_name", _engines())
def test_engine_exports_exactly_the_contract(module_name):
    engine = _load(module_name)
    assert sorted(engine.__all__) == sorted(_contract.ENGINE_NAMES)
    missing = [name for name in _contract.ENGINE_NAMES
               if not hasattr(engine, name)]
    assert missing == []


@pytest.mark.parametrize("module_name", _engines())
@pytest.mark.parametrize("name", sorted(
    _protocol_methods(_contract.Engine)))
def test_engine_functions_take_the_contract_parameters(module_name, name):
    engine = _load(module_name)
    expected = _shape(getattr(_contract.Engine, name), drop_self=True)
    assert _shape(getattr(engine, name), drop_self=False) == expected


@pytest.mark.parametrize("module_name", _engines())
@pytest.mark.parametrize("class_name, protocol", [
    ("Waker", _contract.Waker), ("Reaper", _contract.Reaper)])
def test_engine_classes_have_the_contract_methods(module_name, class_name,
                                                  protocol):
    engine = _load(module_name)
    instance = getattr(engine, class_name)()
    try:
        for name, method in _protocol_methods(protocol).items():
            assert (_shape(getattr(type(instance), name), drop_self=False)
                    == _shape(method, drop_self=False)), name
        for name in getattr(protocol, "__annotations__", {}):
            assert hasattr(instance, name), name
        assert isinstance(instance.fileno(), int)
    finally:
        instance.close()


@pytest.mark.parametrize("module_name", _engines())
def test_stream_files_are_both_there_or_both_absent(module_name):
    engine = _load(module_name)
    assert (engine.SocketReader is None) == (engine.socket_writer_write
                                             is None)


def test_every_plan_field_holds_a_kind_of_its_own_hook():
    """Stock kinds are distinct per hook: a value names its hook."""
    owners = {}
    for hook in _plan.HOOKS:
        for _, kind in hook.stock:
            owners.setdefault(kind, set()).add(hook.field)
    assert all(len(fields) == 1 for fields in owners.values())
    assert _plan.Kind.PYTHON not in owners
    assert set(owners) | {_plan.Kind.PYTHON} == set(_plan.Kind)


class _Echo(csockserver.BaseRequestHandler):
    def handle(self):
        if isinstance(self.request, tuple):
            data, sock = self.request
            sock.sendto(data, self.client_address)
        else:
            self.request.sendall(self.request.recv(100))


class _VerifyingThreadingTCP(csockserver.ThreadingTCPServer):
    def verify_request(self, request, client_address):
        return True  # an override: requests are handed off to the pool


_SERVERS = [csockserver.ThreadingTCPServer, _VerifyingThreadingTCP,
            csockserver.ThreadingUDPServer, csockserver.TCPServer]
if hasattr(csockserver, "ForkingTCPServer"):
    _SERVERS.append(csockserver.ForkingTCPServer)


@pytest.mark.parametrize("server_class", _SERVERS,
                         ids=lambda cls: cls.__name__)
def test_engine_keeps_only_the_declared_state_on_the_server(server_class):
    """Whatever private state the running engine leaves on a server after
    a few requests is listed in _engine.contract.ENGINE_STATE."""
    server = server_class(("127.0.0.1", 0), _Echo)
    before = set(vars(server))
    with ServerThread(server):
        for _ in range(3):
            if server.socket_type == socket.SOCK_DGRAM:
                with socket.socket(socket.AF_INET,
                                   socket.SOCK_DGRAM) as client:
                    client.settimeout(CLIENT_TIMEOUT)
                    client.sendto(b"ping", server.server_address)
                    assert client.recvfrom(100)[0] == b"ping"
            else:
                with stream_client(server) as client:
                    client.sendall(b"ping")
                    assert recv_until_eof(client) == b"ping"
        added = {name for name in set(vars(server)) - before
                 if name.startswith("_csock_")}
    # The shell's own (the running loop's waker) aside, only declared names.
    assert added - {_contract.WAKER} <= set(_contract.ENGINE_STATE)


@pytest.mark.parametrize("change, refused", [
    pytest.param("pass", False, id="unchanged"),
    pytest.param("csockserver._engine.plan.FIELDS += ('extra',)", True,
                 id="plan-fields"),
    pytest.param("csockserver._proxy.V1_MAX = 108", True,
                 id="proxy-constants"),
    pytest.param("csockserver._proxy.V2_SIGNATURE = b'x' * 12", True,
                 id="proxy-signature"),
])
def test_the_compiled_engine_refuses_to_load_against_other_tables(change,
                                                                  refused):
    """C copies of the plan's table and of the PROXY constants are checked
    at import: an extension built against other ones does not load."""
    _load("csockserver._cengine")   # skips where it is not built
    probe = ("import csockserver._engine.plan, csockserver._proxy\n"
             + change + "\n"
             "try:\n"
             "    import csockserver._cengine\n"
             "except ImportError as exc:\n"
             "    print(exc)\n")
    env = child_env()
    # The package picks the pure engine, so that nothing imports the
    # compiled one before the probe has changed the tables.
    env["CSOCKSERVER_NO_EXTENSIONS"] = "1"
    done = subprocess.run([PYTHON, "-c", probe], env=env, timeout=60,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert ("rebuild the extension" in done.stdout) is refused, done.stdout
