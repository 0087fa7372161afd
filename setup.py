"""Build of csockserver's one extension module, the compiled engine.

Cython directives live here and nowhere else.  Set CSOCKSERVER_DEBUG_BUILD=1
for a build with assertions and without optimisation,
CSOCKSERVER_SANITIZE=1 for one instrumented by AddressSanitizer and
UndefinedBehaviorSanitizer (it loads only with libasan preloaded: see
tools/run_sanitized.py, `make asan`), and CSOCKSERVER_ANNOTATE=1 for
Cython's HTML annotation next to the sources.  Switching between these
builds needs `build_ext --force`: the flags are not part of what setuptools
compares to decide that an object is out of date.
"""
import os

import setuptools
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("CSOCKSERVER_DEBUG_BUILD") == "1"
SANITIZE = os.environ.get("CSOCKSERVER_SANITIZE") == "1"
# -O1 keeps the sanitized run quick; the frame pointer and -g make the
# reports' stacks readable.  The same flags go to the link, which pulls in
# the sanitizers' runtimes.
SANITIZER_FLAGS = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer",
                   "-g", "-O1"]

DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": False,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
    # Importing the engine leaves a free-threaded interpreter's GIL off:
    # what threads share is guarded by the engine's own mutexes and
    # atomics, not by the GIL (Cython >= 3.1).
    "freethreading_compatible": True,
}


def compile_flags():
    """The optimisation, debug and sanitizer flags of the build asked for."""
    if not SANITIZE:
        return ["-O0", "-g"] if DEBUG else ["-O2"]
    # Both asked for: the debug build's -O0 comes last, so it wins.
    return SANITIZER_FLAGS + (["-O0"] if DEBUG else [])


engine = Extension(
    "csockserver._cengine",
    sources=["src_c/_cengine.pyx"],
    extra_compile_args=compile_flags(),
    extra_link_args=SANITIZER_FLAGS if SANITIZE else [],
    undef_macros=["NDEBUG"] if DEBUG else [],
)


def license_metadata():
    """MIT, in the form this setuptools writes (see pyproject.toml)."""
    major = int(setuptools.__version__.split(".")[0])
    if major >= 77:
        return {"license_expression": "MIT", "license_files": ["LICENSE"]}
    return {"license": "MIT", "license_files": ["LICENSE"]}


setup(
    **license_metadata(),
    ext_modules=cythonize(
        [engine],
        compiler_directives=DIRECTIVES,
        include_path=["src_c/includes"],
        annotate=os.environ.get("CSOCKSERVER_ANNOTATE") == "1",
    ),
)
