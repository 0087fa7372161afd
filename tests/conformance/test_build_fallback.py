"""setup.py goes on without the compiled engine where it cannot build it.

Each test runs ``setup.py build_ext --inplace`` in a copy of the sources,
as a build with no Cython or no working compiler would: under a second,
since nothing gets compiled (Cython translates the engine only if the
checkout's C file is missing or stale, about 3 s).  Installing the sdist
with pip in such places is tools/check_dist.py --sdist's to check.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

from tests.support.env import TREE

ROOT = TREE
WITHOUT_ENGINE = "csockserver: building without the compiled engine ("
ENGINE = "_cengine" + sysconfig.get_config_var("EXT_SUFFIX")

pytestmark = [
    pytest.mark.skipif(not os.path.exists(os.path.join(ROOT, "setup.py")),
                       reason="no setup.py beside the tests: they run"
                              " against an installed package"),
    pytest.mark.skipif(importlib.util.find_spec("setuptools") is None,
                       reason="no setuptools in this environment"),
]

# setup.py as a build runs it, with Cython importable or not.
RUN_SETUP = """
import runpy, sys
if sys.argv.pop(1) == "no-cython":
    sys.modules["Cython"] = None    # `import Cython` raises ImportError
sys.argv[0] = "setup.py"
runpy.run_path("setup.py", run_name="__main__")
"""


def has_cython():
    """Whether this environment has a Cython that can build the engine."""
    try:
        import Cython
    except ImportError:
        return False
    return tuple(int(part) for part in Cython.__version__.split(".")[:2]
                 if part.isdigit()) >= (3, 1)


@pytest.fixture
def sources(tmp_path):
    """A copy of what setup.py builds from, without compiled engines; the
    generated C file is kept, with its time, so that Cython need not make
    it again."""
    for name in ("setup.py", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(os.path.join(ROOT, name), tmp_path)
    skip = shutil.ignore_patterns("*.so", "__pycache__", "*.html")
    for name in ("csockserver", "src_c"):
        shutil.copytree(os.path.join(ROOT, name), tmp_path / name,
                        ignore=skip)
    return tmp_path


def build_ext(sources, cython=True, **env_vars):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CSOCKSERVER_") and k != "PYTHONPATH"}
    env.update(env_vars)
    return subprocess.run(
        [sys.executable, "-c", RUN_SETUP, "cython" if cython else "no-cython",
         "-q", "build_ext", "--inplace"],
        cwd=sources, env=env, capture_output=True, text=True, timeout=60)


def warnings_in(build):
    return [line for line in build.stderr.splitlines()
            if line.startswith(WITHOUT_ENGINE)]


def test_without_cython_the_build_goes_on_and_says_why(sources):
    stale = sources / "csockserver" / ENGINE
    stale.write_bytes(b"an engine from an earlier build")
    build = build_ext(sources, cython=False)
    assert build.returncode == 0, build.stderr
    assert warnings_in(build) == [
        WITHOUT_ENGINE + "Cython is not installed); the pure-Python engine"
        " will be used"]
    # The pure engine is what this build promised, so the old one is gone.
    assert not stale.exists()


def test_without_cython_a_required_engine_is_an_error(sources):
    build = build_ext(sources, cython=False,
                      CSOCKSERVER_REQUIRE_EXTENSIONS="1")
    assert build.returncode != 0
    assert "error: csockserver: the compiled engine could not be built" \
           " (Cython is not installed), and CSOCKSERVER_REQUIRE_EXTENSIONS" \
           " is set" in build.stderr
    assert warnings_in(build) == []


def test_no_extensions_builds_nothing_and_needs_no_cython(sources):
    build = build_ext(sources, cython=False, CSOCKSERVER_NO_EXTENSIONS="1",
                      CSOCKSERVER_REQUIRE_EXTENSIONS="1")
    assert build.returncode == 0, build.stderr
    assert warnings_in(build) == []
    assert not (sources / "csockserver" / ENGINE).exists()


@pytest.mark.skipif(not has_cython(), reason="needs Cython 3.1 or newer")
def test_a_failing_compiler_leaves_the_pure_engine_unless_required(sources):
    build = build_ext(sources, CC="false")
    assert build.returncode == 0, build.stderr
    [warning] = warnings_in(build)
    assert "(the C compiler failed: " in warning
    assert not (sources / "csockserver" / ENGINE).exists()

    # Same sources: Cython's C file is fresh now.
    build = build_ext(sources, CC="false", CSOCKSERVER_REQUIRE_EXTENSIONS="1")
    assert build.returncode != 0
    assert "error: csockserver: the compiled engine could not be built" \
           " (the C compiler failed: " in build.stderr
    assert warnings_in(build) == []
