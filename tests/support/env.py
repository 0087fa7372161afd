"""This interpreter, this machine and the places the tests run from: the
timeouts every wait is bounded by, what the platform has (fork, AF_UNIX),
and the environment of a child Python that imports this csockserver.
"""

import glob
import os
import re
import socket
import sys

import pytest

import csockserver

# How long a client waits for any one reply, and how long we wait for a
# thread or a blocking server call before calling it hung.  Both are far
# above what a passing test needs: they only bound a failing one.
CLIENT_TIMEOUT = 5.0
JOIN_TIMEOUT = 10.0

HAVE_FORK = hasattr(os, "fork")
HAVE_UNIX = hasattr(socket, "AF_UNIX")

needs_fork = pytest.mark.skipif(not HAVE_FORK, reason="needs os.fork")
needs_unix = pytest.mark.skipif(not HAVE_UNIX, reason="needs AF_UNIX")

# The directory that holds tests/: a checkout (beside the Makefile, docs/,
# tools/, bench/), or the copy of tests/ and tools/ that
# tools/check_dist.py runs an installed package's tests from.
TREE = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

# The directory that holds the csockserver under test: the checkout, or
# site-packages for an installed one.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(
    csockserver.__file__)))

PYTHON = sys.executable


def child_env():
    """The environment for a child Python that imports this csockserver.

    Everything is passed through (so CSOCKSERVER_NO_EXTENSIONS, hence the
    engine choice, is inherited); the repository goes first on PYTHONPATH.
    """
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + path if path else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def other_pythons():
    """pyenv's CPython 3.8+ interpreters other than this one: the pure
    engine runs on each without a build."""
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found = {}
    for python in sorted(glob.glob(os.path.join(root, "versions", "*",
                                                "bin", "python3"))):
        version = os.path.basename(os.path.dirname(os.path.dirname(python)))
        match = re.fullmatch(r"3\.(\d+)\.\d+", version)
        if (match and int(match.group(1)) >= 8
                and os.path.realpath(python)
                != os.path.realpath(sys.executable)):
            found[version] = python
    return found


def pure_engine_env(tmp_path):
    """An environment in which another interpreter imports this
    csockserver's pure engine, and nothing else from this one's paths."""
    package = os.path.dirname(csockserver.__file__)
    os.symlink(package, tmp_path / "csockserver")
    env = dict(os.environ, PYTHONPATH=str(tmp_path),
               CSOCKSERVER_NO_EXTENSIONS="1", PYTHONUNBUFFERED="1")
    env.pop("CSOCKSERVER_REQUIRE_EXTENSIONS", None)
    return env
