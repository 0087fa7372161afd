"""CPython's own test_socketserver, with csockserver standing in, per engine.

The test module comes from the running interpreter's ``test`` package (see
run_cpython_suite.py); each engine runs in its own process, because the
engine is chosen at import time.
"""

import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RUNNER = os.path.join(HERE, "run_cpython_suite.py")
NO_TEST_PACKAGE = 3


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


def _compiled_engine_available():
    probe = subprocess.run(
        [sys.executable, "-c", "import csockserver._cengine"],
        env=_engine_env("cython"), capture_output=True, timeout=60)
    return probe.returncode == 0


@pytest.mark.timeout(600)
@pytest.mark.parametrize("engine", ["cython", "python"])
def test_cpython_test_socketserver_passes(engine):
    if engine == "cython" and not _compiled_engine_available():
        if os.environ.get("CSOCKSERVER_REQUIRE_EXTENSIONS", "") not in ("", "0"):
            pytest.fail("the compiled engine is required but does not import")
        pytest.skip("the compiled engine is not built")
    run = subprocess.run([sys.executable, RUNNER, "test.test_socketserver"],
                         env=_engine_env(engine), capture_output=True,
                         text=True, timeout=540)
    if run.returncode == NO_TEST_PACKAGE:
        pytest.skip("this interpreter ships no 'test' package")
    report = run.stdout[-4000:] + run.stderr[-8000:]
    assert run.returncode == 0, report
    # The runner refuses to run unless csockserver really replaced
    # socketserver in the test module; it names the engine it ran on.
    assert "csockserver engine: %s" % engine in run.stdout, report
    assert "failures 0, errors 0" in run.stdout, report
