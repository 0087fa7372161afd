"""CPython's own tests of socketserver and its users, on csockserver.

Each of CPython's test_socketserver, test_httpservers, test_xmlrpc and
test_wsgiref runs with csockserver standing in for socketserver, once per
engine, each in a process of its own (the engine is chosen at import time).
The test modules come from the running interpreter's ``test`` package; see
tools/run_cpython_suite.py, which also refuses to run unless ``http.server``,
``xmlrpc.server`` and ``wsgiref.simple_server`` really were built on
csockserver.
"""

import functools
import os
import runpy
import subprocess
import sys

import pytest

# the engine's own reading of the variables
from csockserver._engine.selection import _flag
from tests.support.env import TREE

# A script of tools/, not a module of a package: its names are read from
# the file (its main() runs only as a script).
RUNNER = os.path.join(TREE, "tools", "run_cpython_suite.py")
_runner = runpy.run_path(RUNNER)
NO_TEST_PACKAGE, ROOT, SUITES = (_runner["NO_TEST_PACKAGE"], _runner["ROOT"],
                                 _runner["SUITES"])
# Each suite takes well under a minute on either engine (test_xmlrpc, the
# slowest, about 30 s): the bounds only stop a hung one.
SUITE_TIMEOUT = 300


def _engine_env(engine):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [ROOT, env.get("PYTHONPATH")]))
    env.pop("CSOCKSERVER_NO_EXTENSIONS", None)
    env.pop("CSOCKSERVER_REQUIRE_EXTENSIONS", None)
    if engine == "python":
        env["CSOCKSERVER_NO_EXTENSIONS"] = "1"
    else:
        env["CSOCKSERVER_REQUIRE_EXTENSIONS"] = "1"
    return env


@functools.lru_cache(maxsize=None)
def _compiled_engine_available():
    probe = subprocess.run(
        [sys.executable, "-c", "import csockserver._cengine"],
        env=_engine_env("cython"), capture_output=True, timeout=60)
    return probe.returncode == 0


def _engines():
    """The engines this pytest run answers for.

    A run that pins the engine (CI's two passes set one of the variables)
    checks that engine only, so the suites do not run twice per engine; a
    plain run checks both.
    """
    if _flag("CSOCKSERVER_NO_EXTENSIONS"):
        return ["python"]
    if _flag("CSOCKSERVER_REQUIRE_EXTENSIONS"):
        return ["cython"]
    return ["cython", "python"]


@pytest.mark.timeout(SUITE_TIMEOUT + 60)
@pytest.mark.parametrize("engine", _engines())
@pytest.mark.parametrize("suite", SUITES,
                         ids=[name.split(".")[-1] for name in SUITES])
def test_cpython_suite_passes(suite, engine):
    if engine == "cython" and not _compiled_engine_available():
        required = os.environ.get("CSOCKSERVER_REQUIRE_EXTENSIONS", "")
        if required not in ("", "0"):
            pytest.fail("the compiled engine is required but does not import")
        pytest.skip("the compiled engine is not built")
    run = subprocess.run([sys.executable, RUNNER, suite],
                         env=_engine_env(engine), capture_output=True,
                         text=True, timeout=SUITE_TIMEOUT)
    if run.returncode == NO_TEST_PACKAGE:
        pytest.skip("this interpreter ships no 'test' package")
    report = run.stdout[-4000:] + run.stderr[-8000:]
    assert run.returncode == 0, report
    # The runner refuses to run unless csockserver really replaced
    # socketserver under the suite; it names the engine it ran on.
    assert "csockserver engine: %s" % engine in run.stdout, report
    assert "failures 0, errors 0" in run.stdout, report
