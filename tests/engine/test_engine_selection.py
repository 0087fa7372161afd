"""Which engine csockserver picks, and what the environment variables do."""

import os
import subprocess
import sys

import pytest

from tests.support.env import TREE

ROOT = TREE
# Importing with the compiled module blocked simulates a missing extension.
BLOCK_EXTENSION = "import sys; sys.modules['csockserver._cengine'] = None; "


def _run(code, **env_vars):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CSOCKSERVER_")}
    env["PYTHONPATH"] = ROOT
    env.update(env_vars)
    return subprocess.run([sys.executable, "-c", code], env=env,
                          capture_output=True, text=True, timeout=60)


def test_no_extensions_forces_the_pure_engine():
    run = _run("import csockserver; print(csockserver.IMPLEMENTATION)",
               CSOCKSERVER_NO_EXTENSIONS="1")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "python"


def test_no_extensions_wins_over_require():
    run = _run("import csockserver; print(csockserver.IMPLEMENTATION)",
               CSOCKSERVER_NO_EXTENSIONS="1",
               CSOCKSERVER_REQUIRE_EXTENSIONS="1")
    assert run.stdout.strip() == "python", run.stderr


def test_missing_extension_falls_back_to_the_pure_engine():
    run = _run(BLOCK_EXTENSION +
               "import csockserver; print(csockserver.IMPLEMENTATION)")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "python"


def test_missing_extension_is_an_error_when_required():
    run = _run(BLOCK_EXTENSION + "import csockserver",
               CSOCKSERVER_REQUIRE_EXTENSIONS="1")
    assert run.returncode != 0
    assert "ImportError" in run.stderr or "ModuleNotFoundError" in run.stderr


def test_compiled_engine_is_used_when_it_imports():
    probe = _run("import csockserver._cengine")
    if probe.returncode != 0:
        pytest.skip("the compiled engine is not built")
    run = _run("import csockserver; print(csockserver.IMPLEMENTATION)")
    assert run.stdout.strip() == "cython", run.stderr


def test_install_and_uninstall_swap_socketserver():
    code = (
        "import sys, socketserver as std, csockserver\n"
        "csockserver.install()\n"
        "import socketserver\n"
        "assert socketserver is csockserver\n"
        "assert csockserver.TCPServer.__module__ == 'socketserver'\n"
        "import http.server\n"
        "assert issubclass(http.server.HTTPServer, csockserver.TCPServer)\n"
        "csockserver.uninstall()\n"
        "import socketserver\n"
        "assert socketserver is std\n"
        "assert csockserver.TCPServer.__module__ != 'socketserver'\n"
        "print('ok')\n")
    run = _run(code)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "ok"
